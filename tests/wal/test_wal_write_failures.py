"""A failed or short write never leaves a torn record, and the writer goes on afterwards."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rwconsole.labels import make_labels
from rwconsole.model import WalAppendError
from rwconsole.wal import tools
from rwconsole.wal.segment import PAGE_SIZE, WalWriter, iter_wal, list_segments
from rwconsole.wal.storage import WalStorage


class FailingWrite:
    """``os.write`` that writes ``budget`` more bytes (short writes), then fails."""

    def __init__(self) -> None:
        self.budget: int | None = None
        self.err = errno.ENOSPC

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.budget is None:
            return os.write(fd, data)
        if self.budget == 0:
            raise OSError(self.err, os.strerror(self.err))
        written = os.write(fd, data[: self.budget])
        self.budget -= written
        return written


def _record(n: int, size: int) -> bytes:
    return bytes([n % 251]) * size


def test_a_write_failing_at_every_byte_offset_of_a_page_is_cut_back(tmp_path: Path) -> None:
    write = FailingWrite()
    writer = WalWriter(tmp_path, segment_size=64 * PAGE_SIZE, compress=False, write=write)
    kept: list[bytes] = []
    # A record longer than a page: the failing write crosses a page boundary wherever it starts.
    big = _record(7, PAGE_SIZE + 100)
    for cut in range(PAGE_SIZE + 1):
        if cut % 4099 == 0:  # move the start of the batch within the page now and then
            kept.append(_record(cut, 1 + cut % 3000))
            writer.log([kept[-1]])
        before = writer.position()
        size = os.path.getsize(writer.path)
        write.budget = cut
        with pytest.raises(OSError):
            writer.log([big])
        write.budget = None
        assert writer.position() == before, cut
        assert os.path.getsize(writer.path) == size, cut
    kept.append(_record(1, 5000))
    writer.log([kept[-1]])
    writer.close()
    assert [r.data for r in iter_wal(tmp_path)] == kept  # strict reader: no torn record


def test_a_failed_batch_leaves_none_of_its_records(tmp_path: Path) -> None:
    write = FailingWrite()
    writer = WalWriter(tmp_path, segment_size=4 * PAGE_SIZE, compress=False, write=write)
    writer.log([b"\x01first"])
    batch = [_record(i, 3000) for i in range(12)]
    for budget in (0, 1, 3000, 9000, 20000, 36000):
        write.budget = budget
        with pytest.raises(OSError):
            writer.log(batch)
    write.budget = None
    writer.log([b"\x01last"])
    writer.close()
    assert [r.data for r in iter_wal(tmp_path)] == [b"\x01first", b"\x01last"]


def test_a_batch_that_does_not_fit_starts_a_new_segment_first(tmp_path: Path) -> None:
    writer = WalWriter(tmp_path, segment_size=2 * PAGE_SIZE, compress=False)
    writer.log([_record(1, 40000)])
    first = writer.segment
    segment, _ = writer.log([_record(2, 20000), _record(3, 20000)])
    writer.close()
    assert segment == first + 1
    got = list(iter_wal(tmp_path))
    assert [r.segment for r in got] == [first, first + 1, first + 1]


def test_a_failed_rotation_keeps_the_writer_usable(tmp_path: Path) -> None:
    write = FailingWrite()
    writer = WalWriter(tmp_path, segment_size=2 * PAGE_SIZE, compress=False, write=write)
    writer.log([_record(1, 40000)])
    write.budget = 10  # the padding of the full segment cannot be written
    with pytest.raises(OSError):
        writer.log([_record(2, 40000)])
    write.budget = None
    writer.log([_record(3, 40000)])
    writer.close()
    assert [r.data[0] for r in iter_wal(tmp_path)] == [1, 3]


@pytest.mark.parametrize(
    ("err", "reason"),
    [(errno.ENOSPC, "disk_full"), (errno.EDQUOT, "quota"), (errno.EIO, "io_error")],
)
def test_a_failed_commit_raises_and_drops_its_pending_data(
    tmp_path: Path, err: int, reason: str
) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=4 * PAGE_SIZE, compress=False)
    write = FailingWrite()
    write.err = err
    assert wal._writer is not None
    wal._writer._write = write
    refs = wal.series_refs([make_labels({"__name__": "a", "i": str(i)}) for i in range(50)])
    wal.append_samples(refs, 1000, [1.0] * 50)
    write.budget = 100
    with pytest.raises(WalAppendError) as caught:
        wal.commit()
    assert caught.value.reason == reason
    assert str(caught.value).startswith("WAL ") and str(wal.directory) in str(caught.value)
    assert wal.append_failures[reason] == 1 and wal.append_error is not None
    write.budget = None
    # A retry with fresh data: the old batch is gone, the series are still written once.
    wal.append_samples(refs, 2000, [2.0] * 50)
    wal.commit()
    assert wal.append_error is None
    # Only the written batch counts as appended.
    assert wal.metrics()["prometheus_remote_write_wal_samples_appended_total"] == 50
    wal.close()
    reopened = WalStorage.open(tmp_path / "wal", segment_size=4 * PAGE_SIZE, compress=False)
    assert reopened.series_count() == 50
    reopened.close()
    samples = [r for r in iter_wal(tmp_path / "wal") if r.data[0] == 2]
    assert len(samples) == 1
    assert tools.verify(tmp_path / "wal").ok


def test_repeated_failures_do_not_grow_pending_state(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=4 * PAGE_SIZE, compress=False)
    write = FailingWrite()
    assert wal._writer is not None
    wal._writer._write = write
    refs = wal.series_refs([make_labels({"__name__": "a", "i": str(i)}) for i in range(10)])
    write.budget = 0
    for step in range(200):
        wal.append_samples(refs, step, [1.0] * 10)
        with pytest.raises(WalAppendError):
            wal.commit()
        assert not wal._pending_samples and not wal._pending_ts
        assert len(wal._pending_series) == 10  # kept once, not once per failure
    assert os.path.getsize(wal._writer.path) == 0
    wal.close()


def test_reject_at_the_budget(tmp_path: Path) -> None:
    wal = WalStorage.open(
        tmp_path / "wal",
        segment_size=2 * PAGE_SIZE,
        compress=False,
        max_size=4 * PAGE_SIZE,
        reject_when_full=True,
    )
    refs = wal.series_refs([make_labels({"__name__": "a", "i": str(i)}) for i in range(500)])
    accepted = 0
    with pytest.raises(WalAppendError) as caught:
        for step in range(1000):
            wal.append_samples(refs, step, [float(step)] * 500)
            wal.commit()
            accepted += 1
    assert caught.value.reason == "size_limit"
    assert wal.size_bytes() >= 4 * PAGE_SIZE
    wal.close()
    got = [r for r in iter_wal(tmp_path / "wal") if r.data[0] == 2]
    assert len(got) == accepted
    assert len(list_segments(tmp_path / "wal")) >= 2


def test_size_metrics_count_segments_and_checkpoint(tmp_path: Path) -> None:
    wal = WalStorage.open(
        tmp_path / "wal", segment_size=2 * PAGE_SIZE, compress=False, max_size=8 * PAGE_SIZE
    )
    refs = wal.series_refs([make_labels({"__name__": "a", "i": str(i)}) for i in range(200)])
    for step in range(200):
        wal.append_samples(refs, step, [float(step)] * 200)
        wal.commit()
    report = wal.truncate(before_segment=wal.position()[0], mint_ms=0, all_before=True)
    assert report.checkpoint is not None
    metrics = wal.metrics()
    on_disk = sum(f.stat().st_size for f in (tmp_path / "wal").rglob("*") if f.is_file())
    assert metrics["rwconsole_wal_size_bytes"] == on_disk == wal.size_bytes()
    assert any(p.name.startswith("checkpoint.") for p in (tmp_path / "wal").iterdir())
    assert metrics["rwconsole_wal_size_limit_bytes"] == 8 * PAGE_SIZE
    assert metrics["rwconsole_filesystem_free_bytes"] > 0
    wal.close()


def test_close_on_a_full_disk_leaves_a_readable_segment(tmp_path: Path) -> None:
    wal = WalStorage.open(tmp_path / "wal", segment_size=4 * PAGE_SIZE, compress=False)
    refs = wal.series_refs([make_labels({"__name__": "a"})])
    wal.append_samples(refs, 1, [1.0])
    wal.commit()
    write = FailingWrite()
    write.budget = 0
    assert wal._writer is not None
    wal._writer._write = write
    wal.close()  # the padding cannot be written: logged, not raised
    assert wal._writer.closed
    assert tools.verify(tmp_path / "wal").ok
