"""One fragment parser: the whole-file reader and the tail reader agree, as 2.42 reads."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import crc32c
import pytest

from rwconsole.wal.segment import (
    FRAG_FIRST,
    FRAG_FULL,
    PAGE_SIZE,
    CorruptionError,
    FragmentParser,
    TailReader,
    WalRecord,
    WalWriter,
    iter_segment,
)

Outcome = tuple[str, int] | list[bytes]


def _fragment(ftype: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, len(payload), crc32c.crc32c(payload)) + payload


def _whole_file(path: Path) -> Outcome:
    try:
        return [r.data for r in iter_segment(path, 0)]
    except CorruptionError as exc:
        return (exc.reason, exc.offset)


def _tail_of_finished(directory: Path) -> Outcome:
    (directory / "00000001").touch()  # a later segment: segment 0 is finished
    tail = TailReader(directory)
    out: list[bytes] = []
    try:
        for _ in range(100):
            got = tail.read()
            if not got:
                return out
            out += [r.data for r in got]
    except CorruptionError as exc:
        return (exc.reason, exc.offset)
    raise AssertionError("the tail reader did not finish")


def _clean(directory: Path) -> bytes:
    w = WalWriter(directory)
    w.log([b"a" * 100, b"b" * 50_000, b"c" * 10])
    w.flush()  # not closed: the file ends mid-page, as after a crash
    path = directory / "00000000"
    data = path.read_bytes()
    path.unlink()
    return data


def _header_across_pages(clean: bytes) -> bytes:
    # A full fragment whose header starts 3 bytes before a page boundary: the
    # writer never does that, 2.42's reader reads it anyway.
    first = _fragment(FRAG_FULL, b"x" * (PAGE_SIZE - 7 - 7 - 3))
    return first + _fragment(FRAG_FULL, b"across") + _fragment(FRAG_FULL, b"after")


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "clean, short final page": lambda d: d,
    "cut inside a header": lambda d: d[:110],
    "cut inside a payload": lambda d: d[:150],
    "cut after a FIRST fragment": lambda d: d[:PAGE_SIZE],
    "flipped payload byte": lambda d: d[:20] + bytes([d[20] ^ 0xFF]) + d[21:],
    "header across a page boundary": _header_across_pages,
    "padding typed 0x08": lambda d: d[:107] + b"\x08" + bytes(PAGE_SIZE - 108),
    "FIRST then padding": lambda d: _fragment(FRAG_FIRST, b"y" * 10) + bytes(PAGE_SIZE - 17),
    "non-zero byte in padding": lambda d: d[:107] + bytes(500) + b"\x01",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_both_readers_agree(tmp_path: Path, damage: str) -> None:
    data = DAMAGE[damage](_clean(tmp_path))
    (tmp_path / "00000000").write_bytes(data)
    expected = _whole_file(tmp_path / "00000000")
    assert _tail_of_finished(tmp_path) == expected


def test_prometheus_rules_where_the_readers_used_to_differ(tmp_path: Path) -> None:
    clean = _clean(tmp_path)
    path = tmp_path / "00000000"

    def read(damage: str) -> Outcome:
        path.write_bytes(DAMAGE[damage](clean))
        return _whole_file(path)

    # Cut inside a header: the short page reads zero-padded, so the payload's
    # checksum fails, reported at the end of the page (the bytes consumed).
    reason, offset = read("cut inside a header")  # type: ignore[misc]
    assert reason.endswith("expected 0") and offset == PAGE_SIZE
    # A header may start fewer than 7 bytes before a page boundary.
    assert read("header across a page boundary") == [b"x" * (PAGE_SIZE - 17), b"across", b"after"]
    # Padding is any type byte whose low bits are 0; the bytes after it are checked.
    assert read("padding typed 0x08") == [b"a" * 100]
    # Padding after a FIRST fragment ends the data: 2.42 drops the record silently.
    assert read("FIRST then padding") == []
    # A partial header at the very end is reported where the data ends.
    path.write_bytes(_fragment(FRAG_FULL, b"z" * (PAGE_SIZE - 11)) + b"\x01\x00\x00\x00")
    assert _whole_file(path) == ("read remaining header: unexpected EOF", PAGE_SIZE)


def test_an_incomplete_tail_is_not_an_error_when_the_file_is_still_written() -> None:
    data = _fragment(FRAG_FULL, b"one") + _fragment(FRAG_FIRST, b"two")[:5]
    parser = FragmentParser(3, 0)
    got: list[WalRecord] = []
    parser.parse(data, got, eof=True, tail_ok=True)
    assert [r.data for r in got] == [b"one"] and parser.record_end == 10
    assert parser.offset == 10  # the cut-off header is left for the next call
    with pytest.raises(CorruptionError, match="checksum") as info:
        FragmentParser(3, 0).parse(data, [], eof=True)  # finished: read zero-padded
    assert info.value.offset == 20  # just after the zero-padded fragment
    # Chunk by chunk, a record spanning chunks comes out once it is complete.
    w_parts = [_fragment(FRAG_FIRST, b"ab"), _fragment(4, b"cd")]
    parser = FragmentParser(0, 0)
    out: list[WalRecord] = []
    parser.parse(w_parts[0], out, eof=False)
    assert out == [] and parser.offset == 9 and parser.record_end == 0
    parser.parse(w_parts[1], out, eof=False)
    (record,) = out
    assert (record.data, record.start, record.end) == (b"abcd", 0, 18)


def test_records_before_a_corruption_come_out_first(tmp_path: Path) -> None:
    records = [bytes([i]) * 50 for i in range(10)]
    w = WalWriter(tmp_path)
    w.log(records)
    w.close()
    path = tmp_path / "00000000"
    data = bytearray(path.read_bytes())
    data[5 * 57 + 20] ^= 0xFF  # inside the sixth record
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(CorruptionError, match="checksum") as info:
        for record in iter_segment(path, 0):
            got.append(record.data)
    assert got == records[:5] and info.value.offset == 6 * 57
