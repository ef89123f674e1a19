"""Prepared sample batches: the same records as append_samples, checked refs, stale batches."""

from __future__ import annotations

import math
import struct
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wal_helpers import series

from rwconsole.engine import _FanoutAppender
from rwconsole.model import STALE_NAN, MetricMetadata, MetricType
from rwconsole.remote.chunks import Chunk
from rwconsole.wal import records as rec
from rwconsole.wal.segment import iter_wal, list_segments
from rwconsole.wal.storage import (
    PreparedSamples,
    StalePreparedError,
    UnknownSeriesError,
    WalStorage,
)

T0 = 1_700_000_000_000
OUT_OF_ORDER = "prometheus_remote_write_wal_out_of_order_samples_total"
APPENDED = "prometheus_remote_write_wal_samples_appended_total"

# Float bit patterns that must survive exactly: stale marker, Go's NaN, -0.0, infinities.
SPECIAL = [STALE_NAN, struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0], -0.0]
SPECIAL += [math.inf, -math.inf, 5e-324, 1.7976931348623157e308]


def _segment_bytes(directory: Path) -> list[tuple[str, bytes]]:
    return [(s.path.name, s.path.read_bytes()) for s in list_segments(directory)]


def _samples(directory: Path) -> list[tuple[int, int, bytes]]:
    """(ref, t, value bits) of every sample in the WAL, in order."""
    out = []
    for item in iter_wal(directory):
        decoded = rec.decode(item.data)
        if isinstance(decoded, rec.SamplesRecord):
            for ref, t, v in zip(decoded.refs, decoded.timestamps, decoded.values, strict=True):
                out.append((ref, t, struct.pack(">d", v)))
    return out


Step = Callable[[WalStorage, bool], None]


def _write_twice(tmp_path: Path, steps: Sequence[Step], **options: object) -> tuple[Path, Path]:
    """Run ``steps`` on two fresh WALs, the second using prepared batches; close both."""
    dirs = []
    for prepared in (False, True):
        directory = tmp_path / ("prepared" if prepared else "plain")
        wal = WalStorage.open(directory, **options)  # type: ignore[arg-type]
        for step in steps:
            step(wal, prepared)
        wal.close()
        dirs.append(directory)
    return dirs[0], dirs[1]


def test_prepared_appends_write_byte_identical_segments(tmp_path: Path) -> None:
    """Series records, metadata, several batches per commit, rotation: same bytes."""
    batches: dict[int, PreparedSamples] = {}

    def append(wal: WalStorage, prepared: bool, refs: list[int], t: int, vals: list[float]) -> None:
        if prepared:
            key = hash(tuple(refs))
            if key not in batches or batches[key]._storage is not wal:
                batches[key] = wal.prepare_samples(refs)
            wal.append_prepared(batches[key], t, vals)
        else:
            wal.append_samples(refs, t, vals)

    def scrape_like(wal: WalStorage, prepared: bool) -> None:
        refs = wal.series_refs(series(300, "a"))
        wal.append_metadata([MetricMetadata(refs[0], MetricType.GAUGE, "bytes", "A gauge.")])
        for step in range(40):
            values = [float(step * 1000 + i) for i in range(300)]
            values[step % 300] = SPECIAL[step % len(SPECIAL)]
            append(wal, prepared, refs, T0 + step * 15_000, values)
            # The report series of a scrape, a second record in the same commit.
            append(wal, prepared, refs[:5], T0 + step * 15_000, [1.0, 0.5, 300.0, 300.0, 0.0])
            wal.commit()

    def with_gaps(wal: WalStorage, prepared: bool) -> None:
        every = wal.series_refs(series(9000, "b"))
        picked = every[::7] + every[-3:] + [every[0]]  # gaps, a large span, back to the start
        picked = list(dict.fromkeys(reversed(picked)))  # unsorted: negative deltas
        for step in range(5):
            values = [float(i + step) for i in range(len(picked))]
            append(wal, prepared, picked, T0 + step, values)
            wal.commit()

    plain, prepared = _write_twice(
        tmp_path, [scrape_like, with_gaps], segment_size=64 * 1024, compress=True
    )
    assert len(list_segments(plain)) > 2  # rotation happened
    assert _segment_bytes(plain) == _segment_bytes(prepared)


@pytest.mark.parametrize("compress", [False, True])
def test_replay_after_prepared_appends(tmp_path: Path, compress: bool) -> None:
    wal = WalStorage.open(tmp_path / "wal", compress=compress)
    refs = wal.series_refs(series(50))
    batch = wal.prepare_samples(refs)
    expected = []
    for step in range(3):
        t = T0 + step * 1000
        values = [float(step * 50 + i) for i in range(50)]
        wal.append_prepared(batch, t, values)
        wal.commit()
        expected += [(r, t, struct.pack(">d", v)) for r, v in zip(refs, values, strict=True)]
    assert wal.metrics()[APPENDED] == 150
    wal.close()

    reopened = WalStorage.open(tmp_path / "wal", compress=compress)
    assert reopened.series_refs(series(50)) == refs
    assert _samples(tmp_path / "wal") == expected
    # Replay restored each series' last timestamp: an older sample is out of order ...
    again = reopened.prepare_samples(refs)
    reopened.append_prepared(again, T0 + 1000, [0.0] * 50)
    reopened.commit()
    assert reopened.metrics()[OUT_OF_ORDER] == 50
    # ... a newer one is not, and the new segment's time span is the batch's timestamp.
    reopened.append_prepared(again, T0 + 9000, [0.0] * 50)
    reopened.commit()
    assert reopened.metrics()[OUT_OF_ORDER] == 50
    last = reopened.segments_info()[-1]
    assert (last.min_time_ms, last.max_time_ms) == (T0 + 1000, T0 + 9000)
    reopened.close()


def test_prepared_timestamps_count_for_truncation(tmp_path: Path) -> None:
    """Series appended only through a batch stay live; those left behind are collected."""
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    refs = wal.series_refs(series(20))
    batch = wal.prepare_samples(refs[:10])
    wal.append_samples(refs, T0, [1.0] * 20)
    wal.commit()
    wal.append_prepared(batch, T0 + 60_000, [2.0] * 10)
    wal.commit()
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert sorted(report.collected_refs) == sorted(refs[10:])
    wal.close()


def test_stale_batch_after_truncation_is_refused(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    refs = wal.series_refs(series(6))
    wal.append_samples(refs, T0, [1.0] * 6)
    wal.commit()
    kept = wal.prepare_samples(refs[:3])
    doomed = wal.prepare_samples(refs[2:])
    wal.append_prepared(kept, T0 + 60_000, [2.0] * 3)
    wal.commit()
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert sorted(report.collected_refs) == refs[3:]

    # Its series are still there: the batch is checked again once and appends.
    wal.append_prepared(kept, T0 + 120_000, [3.0] * 3)
    # Some are gone: refused, nothing pending, nothing written.
    position = wal.position()
    with pytest.raises(StalePreparedError) as caught:
        wal.append_prepared(doomed, T0 + 120_000, [3.0] * 4)
    assert caught.value.refs == refs[3:]
    assert isinstance(caught.value, UnknownSeriesError)
    shown = ", ".join(map(str, refs[3:]))
    message = f"a prepared batch names 3 series the WAL has collected since: refs {shown}"
    assert str(caught.value) == message
    wal.commit()
    assert wal.position() > position
    position = wal.position()
    with pytest.raises(StalePreparedError):  # refused every time, not just once
        wal.append_prepared(doomed, T0 + 180_000, [3.0] * 4)
    wal.commit()
    assert wal.position() == position
    with pytest.raises(UnknownSeriesError):
        wal.prepare_samples(refs[2:])
    wal.close()
    written = {ref for ref, _, _ in _samples(tmp_path / "wal")}
    after = [(r, t) for r, t, _ in _samples(tmp_path / "wal") if t > T0 + 60_000]
    assert written == set(refs)
    assert after == [(r, T0 + 120_000) for r in refs[:3]]


def test_series_collected_between_prepared_append_and_commit(tmp_path: Path) -> None:
    """The record was written while the ref was live; its bookkeeping skips the collected ref."""
    wal = WalStorage.open(tmp_path / "wal", segment_size=64 * 1024)
    refs = wal.series_refs(series(3))
    wal.append_samples(refs, T0, [1.0] * 3)
    wal.commit()
    wal.append_samples(refs[1:], T0 + 60_000, [1.0] * 2)
    wal.commit()
    batch = wal.prepare_samples(refs)
    wal.append_prepared(batch, T0 + 120_000, [2.0] * 3)
    report = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert report.collected_refs == [refs[0]]
    wal.commit()
    assert wal.metrics()[OUT_OF_ORDER] == 0
    # The collected ref did not come back into the series table through the commit.
    again = wal.truncate(before_segment=0, mint_ms=T0 + 1)
    assert again.collected_refs == []
    assert wal.lookup(refs[0]) is None
    wal.close()


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal")
    other = WalStorage.open(tmp_path / "other")
    refs = wal.series_refs(series(3))
    with pytest.raises(ValueError, match=f"series ref {refs[1]} twice"):
        wal.prepare_samples([refs[0], refs[1], refs[2], refs[1]])
    with pytest.raises(UnknownSeriesError, match="999"):
        wal.prepare_samples([refs[0], 999])
    batch = wal.prepare_samples(refs)
    assert len(batch) == 3 and batch.refs == tuple(refs)
    with pytest.raises(ValueError, match="2 values for a record of 3 refs"):
        wal.append_prepared(batch, T0, [1.0, 2.0])
    with pytest.raises(TypeError, match="one int timestamp, not a list"):
        wal.append_prepared(batch, [T0, T0, T0], [1.0] * 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another WAL"):
        other.append_prepared(batch, T0, [1.0] * 3)
    empty = wal.prepare_samples([])
    wal.append_prepared(empty, T0, [])
    with pytest.raises(ValueError, match="1 values for an empty batch"):
        wal.append_prepared(empty, T0, [1.0])
    assert wal.metrics()[APPENDED] == 0
    wal.commit()
    other.close()
    wal.close()
    assert _samples(tmp_path / "wal") == []


# --- the codec over many ref sets -------------------------------------------------------------

_refs = st.lists(
    st.one_of(
        st.integers(1, 200),  # dense: one-byte deltas
        st.integers(1, 20_000),  # two-byte deltas
        st.integers(1, (1 << 63) - 1),  # huge deltas both ways
    ),
    min_size=1,
    max_size=80,
    unique=True,
)
_values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(SPECIAL)


@settings(max_examples=300, deadline=None)
@given(
    refs=_refs,
    timestamp=st.integers(-(1 << 63), (1 << 63) - 1),
    data=st.data(),
)
def test_fixed_refs_encoding_matches_encode_samples(
    refs: list[int], timestamp: int, data: st.DataObject
) -> None:
    encoder = rec.FixedRefsSamples(refs)
    layouts = rec.SampleLayouts()
    layouts.add(encoder)
    for _ in range(2):  # the encoder is reused: no state leaks from one record to the next
        values = data.draw(st.lists(_values, min_size=len(refs), max_size=len(refs)))
        record = encoder.encode(timestamp, values)
        assert record == rec.encode_samples(refs, timestamp, values)
        decoded = rec.decode_samples(record, layouts)  # by the encoder's layout
        assert decoded.refs == refs and decoded.timestamps == [timestamp] * len(refs)
        assert list(map(_bits, decoded.values)) == list(map(_bits, values))


def _bits(value: float) -> bytes:
    return struct.pack(">d", value)


def test_records_of_a_live_encoder_decode_by_its_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [500, 3, 40_000, 501, 9]
    encoder = rec.FixedRefsSamples(refs)
    layouts = rec.SampleLayouts()
    layouts.add(encoder)
    record = encoder.encode(T0, [1.5, STALE_NAN, -0.0, 7.0, math.inf])

    def decode_without_layouts(record: bytes) -> rec.SamplesRecord:
        return rec.decode_samples(record)

    expected = decode_without_layouts(record)
    # A record of the same size and base ref that the encoder did not write: another
    # ref in one place, then a time delta, then a ref and a value swapped between entries.
    others = [
        rec.encode_samples([500, 3, 40_001, 501, 9], T0, [1.0] * 5),
        rec.encode_samples([500, 3, 40_000, 501, 9], [T0, T0, T0, T0 + 1, T0], [1.0] * 5),
        rec.encode_samples([500, 9, 40_000, 501, 3], T0, [1.0, 2.0, 3.0, 4.0, 5.0]),
    ]
    for other in others:
        assert len(other) == len(record) and other[:9] == record[:9]

    def refuse(*args: object) -> None:
        raise AssertionError("decoded by a varint walk")

    with monkeypatch.context() as patched:
        patched.setattr(rec, "_decode_samples_strided", refuse)
        patched.setattr(rec, "_decode_samples_general", refuse)
        decoded = rec.decode_samples(record, layouts)
    assert (decoded.refs, decoded.timestamps) == (expected.refs, expected.timestamps)
    assert list(map(_bits, decoded.values)) == list(map(_bits, expected.values))
    for other in others:
        assert rec.decode_samples(other, layouts) == decode_without_layouts(other)
    del encoder  # gone: its layout is forgotten, its records decode as any other
    assert (len(record), 500) not in layouts
    again = rec.decode_samples(record, layouts)
    assert (again.refs, again.timestamps) == (refs, [T0] * 5)
    assert list(map(_bits, again.values)) == list(map(_bits, decoded.values))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(1, 3000),
    data=st.data(),
)
def test_prepared_batches_over_ref_sets_write_the_same_wal(count: int, data: st.DataObject) -> None:
    """Subsets of live series in any order (gaps, large spans, negative deltas)."""
    picks = data.draw(
        st.lists(st.integers(0, count - 1), min_size=1, max_size=min(count, 200), unique=True)
    )
    values = data.draw(st.lists(_values, min_size=len(picks), max_size=len(picks)))
    with tempfile.TemporaryDirectory() as tmp:

        def step(wal: WalStorage, prepared: bool) -> None:
            refs = wal.series_refs(series(count))
            chosen = [refs[i] for i in picks]
            if prepared:
                batch = wal.prepare_samples(chosen)
                wal.append_prepared(batch, T0, values)
                wal.append_prepared(batch, T0 + 1, values[::-1])
            else:
                wal.append_samples(chosen, T0, values)
                wal.append_samples(chosen, T0 + 1, values[::-1])
            wal.commit()

        plain, prepared = _write_twice(Path(tmp), [step], compress=False)
        assert _segment_bytes(plain) == _segment_bytes(prepared)


# --- the engine's fan-out appender ------------------------------------------------------------


class _CommitRecorder:
    """The part of the engine the fan-out appender calls: its WAL and the commit hook."""

    def __init__(self, wal: WalStorage) -> None:
        self.wal = wal
        self.chunks: list[Chunk] = []

    def _on_commit(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)


def test_fanout_offers_the_same_chunks_for_prepared_appends(tmp_path: Path) -> None:
    recorded = []
    for prepared in (False, True):
        wal = WalStorage.open(tmp_path / str(prepared))
        engine = _CommitRecorder(wal)
        app = _FanoutAppender(engine)  # type: ignore[arg-type]
        refs = app.series_refs(series(40))
        batch = app.prepare_samples(refs[5:]) if prepared else None
        for step in range(3):
            t = T0 + step * 1000
            values = [float(step + i) for i in range(35)]
            if batch is not None:
                app.append_prepared(batch, t, values)
            else:
                app.append_samples(refs[5:], t, values)
            app.append_samples(refs[:5], [t, t, t + 1, t + 2, t + 3], [0.5] * 5)
            app.commit()
        wal.close()
        recorded.append((engine.chunks, _segment_bytes(tmp_path / str(prepared))))
    (plain_chunks, plain_bytes), (prepared_chunks, prepared_bytes) = recorded
    assert prepared_bytes == plain_bytes
    assert prepared_chunks == plain_chunks
    assert [len(c.refs) for c in prepared_chunks] == [40, 40, 40]
    assert prepared_chunks[0].timestamps[:35] == [T0] * 35


def test_a_live_encoder_does_not_change_how_others_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [500, 3, 40_000, 501, 9]
    encoder = rec.FixedRefsSamples(refs)
    record = encoder.encode(T0, [1.5, 2.5, 3.5, 4.5, 5.5])
    used: list[str] = []
    general = rec._decode_samples_general
    monkeypatch.setattr(
        rec, "_decode_samples_general", lambda *a: used.append("general") or general(*a)
    )
    decoded = rec.decode_samples(record)  # no layouts given: the encoder is not consulted
    assert used == ["general"]
    assert decoded.refs == refs
    layouts = rec.SampleLayouts()
    layouts.add(encoder)
    assert rec.decode_samples(record, layouts) == decoded
    assert used == ["general"]


def test_a_prepared_batch_lends_its_layout_to_readers_of_its_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WalStorage.open(tmp_path / "wal", compress=False) as wal:
        refs = wal.series_refs(series(7))
        batch = wal.prepare_samples(list(reversed(refs)))
        wal.append_prepared(batch, T0, [float(i) for i in range(7)])
        wal.commit()
        record = [i.data for i in iter_wal(tmp_path / "wal") if rec.record_type(i.data) == 2][-1]

        def refuse(*args: object) -> None:
            raise AssertionError("decoded by a varint walk")

        with monkeypatch.context() as patched:
            patched.setattr(rec, "_decode_samples_strided", refuse)
            patched.setattr(rec, "_decode_samples_general", refuse)
            decoded = rec.decode_samples(record, wal.sample_layouts)
        assert decoded == rec.decode_samples(record)
        del batch
        assert len(wal.sample_layouts) == 0


@pytest.mark.parametrize("refs", [[5, 6, 7], [100, 40, 300, 101], list(range(1000, 1300))])
def test_layout_decode_accepts_its_own_records_byte_for_byte(refs: list[int]) -> None:
    """Every byte outside the timestamp and the values is checked: a record of the
    same size and base ref whose ref deltas differ is not decoded by the layout."""
    layout = rec.FixedRefsSamples(refs)
    values = [float(i) + 0.5 for i in range(len(refs))]
    data = layout.encode(1_700_000_000_000, values)
    decoded = layout.decode(data)
    assert decoded is not None
    assert (decoded.refs, decoded.values) == (refs, values)
    assert decoded.timestamps == [1_700_000_000_000] * len(refs)
    changed_value = bytearray(data)
    changed_value[-8] ^= 0x40  # the last value's first byte
    other = layout.decode(bytes(changed_value))
    assert other is not None and other.values[:-1] == values[:-1]
    assert other.values[-1] != values[-1]
    for position in range(len(data)):
        if 9 <= position < 17 or _in_a_value(refs, position):
            continue  # the base timestamp or a value
        changed = bytearray(data)
        changed[position] ^= 0x01
        assert layout.decode(bytes(changed)) is None, position


def _in_a_value(refs: list[int], position: int) -> bool:
    """Whether byte ``position`` of ``refs``' record lies in one of its 8-byte values."""
    offset = 17
    base = refs[0]
    for ref in refs:
        offset += len(rec._varints([ref - base], zero_suffix=True)[0])
        if offset <= position < offset + 8:
            return True
        offset += 8
    return False
