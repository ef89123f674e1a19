"""Replay of a WAL to a loopback receiver: filtering, damage, progress, locks, read-only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from http_helpers import HTTPServer, Request, Response

from rwconsole.cli import main
from rwconsole.config.schema import PROTOBUF_V1, PROTOBUF_V2, EndpointConfig, QueueConfig
from rwconsole.datadir import DataDirLock
from rwconsole.protocol import decode
from rwconsole.remote.replay import (
    Replay,
    ReplayError,
    ReplayOptions,
    ReplaySummary,
    TokenBucket,
    WalReplaySource,
    default_progress_path,
    load_progress,
    wal_files,
)
from rwconsole.wal import tools
from rwconsole.wal.segment import WalFile, missing_files


@pytest.fixture
def wal_copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "agent"
    shutil.copytree(fixtures_dir / "agent-snappy", target)
    return target


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class _Receiver:
    def __init__(self, status: int = 204) -> None:
        self.samples: list[tuple[object, int]] = []
        self.metadata: set[object] = set()
        self.status = status
        self.server = HTTPServer(self._handle)

    def _handle(self, request: Request) -> Response:
        decoded = decode.decode_write_request(
            request.body, request.header("Content-Type"), request.header("Content-Encoding")
        )
        for series in decoded.series:
            self.samples.extend((series.labels, t) for t, _ in series.samples)
            if series.metadata is not None:
                self.metadata.add(series.metadata.type)
        written = [
            ("X-Prometheus-Remote-Write-Samples-Written", str(decoded.samples)),
            ("X-Prometheus-Remote-Write-Exemplars-Written", str(decoded.exemplars)),
            ("X-Prometheus-Remote-Write-Histograms-Written", str(decoded.histograms)),
        ]
        return Response(self.status, written, b"bad data" if self.status >= 400 else b"")


async def _replay(
    wal: Path,
    options: ReplayOptions,
    status: int = 204,
    protobuf: str = PROTOBUF_V1,
    age_limit: float = 0.0,
) -> tuple:
    receiver = _Receiver(status)
    await receiver.server.start()
    try:
        endpoint = EndpointConfig(
            url=receiver.server.url + "/api/v1/write",
            queue_config=QueueConfig(batch_send_deadline=0.05, sample_age_limit=age_limit),
            protobuf_message=protobuf,
        )
        replay = Replay(tools.resolve_wal_dir(wal), endpoint, wal.parent / "progress.json", options)
        summary = await asyncio.wait_for(replay.run(), 60)
    finally:
        await receiver.server.aclose()
    return summary, receiver


def _run(
    wal: Path,
    options: ReplayOptions,
    status: int = 204,
    protobuf: str = PROTOBUF_V1,
    age_limit: float = 0.0,
) -> tuple[ReplaySummary, list[tuple[object, int]]]:
    summary, receiver = asyncio.run(_replay(wal, options, status, protobuf, age_limit))
    return summary, receiver.samples


def _expected(wal: Path, lo: int | None = None, hi: int | None = None) -> set:
    return {
        (item.labels, item.timestamp)
        for item in tools.iter_dump(tools.resolve_wal_dir(wal), start=lo, end=hi)
        if item.kind == "sample"
    }


def test_replay_sends_every_sample_and_leaves_the_wal_untouched(wal_copy: Path) -> None:
    before = _digest(wal_copy)
    summary, samples = _run(wal_copy, ReplayOptions())
    assert summary.ok
    assert len(samples) == len(set(samples)) == summary.read["samples"] == 11692
    assert set(samples) == _expected(wal_copy)
    assert _digest(wal_copy) == before  # nothing written, nothing repaired
    saved = json.loads((wal_copy.parent / "progress.json").read_text())
    assert saved["finished"] is True


def test_replay_with_remote_write_2(wal_copy: Path) -> None:
    summary, samples = _run(wal_copy, ReplayOptions(), protobuf=PROTOBUF_V2)
    assert summary.ok, summary
    assert set(samples) == _expected(wal_copy)
    assert len(samples) == 11692


def test_the_endpoints_age_limit_does_not_drop_old_data(wal_copy: Path) -> None:
    summary, samples = _run(wal_copy, ReplayOptions(), age_limit=60.0)
    assert summary.ok and not summary.dropped
    assert len(samples) == 11692


def test_time_range_filters_and_counts_skipped(wal_copy: Path) -> None:
    times = sorted(t for _, t in _expected(wal_copy))
    lo, hi = times[len(times) // 3], times[2 * len(times) // 3]
    summary, samples = _run(wal_copy, ReplayOptions(start_ms=lo, end_ms=hi))
    assert summary.ok
    assert set(samples) == _expected(wal_copy, lo, hi)
    assert summary.skipped_time["samples"] == 11692 - len(samples)
    assert summary.skipped_time["samples"] > 0


def test_rejected_batches_are_failures_by_reason(wal_copy: Path) -> None:
    summary, _ = _run(wal_copy, ReplayOptions())
    summary, _ = _run(wal_copy, ReplayOptions(restart=True), status=400)
    assert not summary.ok
    assert summary.accepted == 0
    assert sum(summary.failed.values()) == 11692 + 1820
    assert all(reason.startswith("HTTP 400") for reason in summary.failed)


def test_finished_replay_sends_nothing_again(wal_copy: Path) -> None:
    _run(wal_copy, ReplayOptions())
    summary, samples = _run(wal_copy, ReplayOptions())
    assert summary.already_done and summary.ok and samples == []


def test_damage_ships_what_precedes_and_says_where(wal_copy: Path) -> None:
    segment = wal_copy / "wal" / "00000000"
    data = bytearray(segment.read_bytes())
    cut = len(data) // 2
    data[cut] ^= 0xFF  # inside some fragment: its CRC no longer matches
    segment.write_bytes(bytes(data))
    before = _digest(wal_copy)
    summary, samples = _run(wal_copy, ReplayOptions())
    assert not summary.ok
    assert summary.damage is not None and "00000000" in summary.damage
    assert "byte offset" in summary.damage
    assert 0 < len(samples) < 11692
    assert _digest(wal_copy) == before


def test_missing_segments_are_reported_and_the_rest_is_shipped(
    wal_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    wal = wal_copy / "wal"
    shutil.copyfile(wal / "00000000", wal / "00000002")  # 00000001 is missing
    summary, samples = _run(wal_copy, ReplayOptions())
    assert summary.missing == ["00000001"]
    assert not summary.ok
    assert len(samples) == 2 * 11692 and len(set(samples)) == 11692  # both files shipped

    async def cli() -> int:
        receiver = _Receiver()
        await receiver.server.start()
        try:
            url = receiver.server.url + "/api/v1/write"
            args = ["wal", "replay", str(wal_copy), "--url", url, "--restart"]
            return await asyncio.wait_for(asyncio.to_thread(main, args), 60)
        finally:
            await receiver.server.aclose()

    assert asyncio.run(cli()) != 0
    assert "missing segments (1): 00000001" in capsys.readouterr().out


def test_missing_files_covers_the_checkpoint_and_the_step_after_it(tmp_path: Path) -> None:
    def f(index: int, checkpoint: int | None = None) -> WalFile:
        return WalFile(tmp_path / str(index), index, 1, checkpoint)

    files = [f(0, 5), f(2, 5), f(7), f(8), f(11)]
    assert missing_files(files) == [
        "checkpoint.00000005/00000001",
        "00000006",
        "00000009",
        "00000010",
    ]
    assert missing_files([f(0, 5), f(6), f(7)]) == []
    assert missing_files([f(3), f(4)]) == []  # older segments truncated away: no gap


def test_a_resumed_source_hands_out_only_what_follows_the_resume(wal_copy: Path) -> None:
    files = wal_files(wal_copy / "wal")
    resume = (0, files[0].size // 2)

    async def read_all() -> list:
        source = WalReplaySource(files, resume, ReplayOptions(), ReplaySummary())
        chunks = []
        while not source.finished.is_set():
            chunks.append(await source.next_chunk())
        return chunks

    chunks = asyncio.run(read_all())
    assert chunks and all(chunk.end > resume for chunk in chunks)
    sent = sum(len(chunk.refs) for chunk in chunks)
    assert 0 < sent < 11692


class _RefusingAfter(_Receiver):
    """Takes ``accept`` requests, then answers 503 to each until told otherwise."""

    def __init__(self, accept: int) -> None:
        super().__init__()
        self.accept = accept
        self.refused = 0

    def _handle(self, request: Request) -> Response:
        if self.accept <= 0:
            self.refused += 1
            return Response(503, [], b"refusing")
        self.accept -= 1
        return super()._handle(request)


def test_a_replay_stopped_while_the_receiver_refuses_resumes_without_sending_twice(
    wal_copy: Path,
) -> None:
    """One shard sends 70 samples at a time, so the last batch taken ends inside a
    record: the progress file keeps what was delivered beyond its position, and
    the resumed replay skips it."""

    async def main() -> list[tuple[object, int]]:
        receiver = _RefusingAfter(accept=9)
        await receiver.server.start()
        try:
            endpoint = EndpointConfig(
                url=receiver.server.url + "/api/v1/write",
                queue_config=QueueConfig(
                    min_shards=1,
                    max_shards=1,
                    max_samples_per_send=70,
                    batch_send_deadline=0.05,
                    min_backoff=0.01,
                    max_backoff=0.05,
                ),
            )
            progress = wal_copy.parent / "progress.json"
            wal = tools.resolve_wal_dir(wal_copy)
            first = Replay(wal, endpoint, progress, ReplayOptions(flush_deadline=0.5))
            running = asyncio.create_task(first.run())
            for _ in range(500):
                if receiver.refused:
                    break
                await asyncio.sleep(0.01)
            first.stop()
            summary = await asyncio.wait_for(running, 30)
            assert summary.interrupted and len(receiver.samples) == 9 * 70
            saved = json.loads(progress.read_text())
            assert saved["delivered_ahead"]["items"] > 0
            receiver.accept = 1 << 30
            second = Replay(wal, endpoint, progress, ReplayOptions())
            summary = await asyncio.wait_for(second.run(), 60)
            assert summary.ok, summary
            assert "delivered_ahead" not in json.loads(progress.read_text())
        finally:
            await receiver.server.aclose()
        return receiver.samples

    samples = asyncio.run(main())
    assert len(samples) == len(set(samples)) == 11692, "every sample once"
    assert set(samples) == _expected(wal_copy)


def test_progress_file_errors_name_the_key(wal_copy: Path, tmp_path: Path) -> None:
    files = wal_files(wal_copy / "wal")
    bad = tmp_path / "p.json"
    bad.write_text('{"version": 1, "file": "00000000", "offset": -4}')
    with pytest.raises(ReplayError, match="'offset'"):
        load_progress(bad, files)
    bad.write_text('{"version": 1, "file": "00000009", "offset": 0}')
    with pytest.raises(ReplayError, match="'file'"):
        load_progress(bad, files)
    bad.write_text("{not json")
    with pytest.raises(ReplayError, match="--restart"):
        load_progress(bad, files)


def test_default_progress_path_is_beside_the_directory(tmp_path: Path) -> None:
    path = default_progress_path(tmp_path / "data", "abc123")
    assert path == tmp_path / "data.replay-abc123.json"


def test_token_bucket_paces_samples() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def take_all() -> None:
        bucket = TokenBucket(100.0, clock=lambda: now[0], sleep=sleep)
        for _ in range(10):
            await bucket.take(50)

    asyncio.run(take_all())
    # 500 samples at 100/s with a burst of 100: four seconds of waiting.
    assert sum(slept) == pytest.approx(4.0)


def test_cli_refuses_a_locked_directory(wal_copy: Path, capsys: pytest.CaptureFixture) -> None:
    lock = DataDirLock.acquire(wal_copy)
    try:
        code = main(["wal", "replay", str(wal_copy), "--url", "http://127.0.0.1:9/api/v1/write"])
    finally:
        lock.release()
    assert code == 2
    assert "in use" in capsys.readouterr().err


def test_cli_usage_errors(wal_copy: Path, capsys: pytest.CaptureFixture) -> None:
    url = "http://127.0.0.1:9/api/v1/write"
    assert main(["wal", "replay", str(wal_copy), "--url", url, "--from", "yesterday"]) == 2
    assert "--from" in capsys.readouterr().err
    assert main(["wal", "replay", str(wal_copy), "--url", url, "--rate", "0"]) == 2
    assert "--rate" in capsys.readouterr().err
    assert main(["wal", "replay", str(wal_copy), "--url", url, "--rate", "inf"]) == 2
    assert "--rate" in capsys.readouterr().err
    assert main(["wal", "replay", str(wal_copy), "--url", url, "--endpoint", "x"]) == 2
    assert "--endpoint" in capsys.readouterr().err
    config = wal_copy.parent / "rw.toml"
    config.write_text('[[endpoint]]\nurl = "http://a/api/v1/write"\nname = "a"\n')
    assert main(["wal", "replay", str(wal_copy), "-c", str(config), "--endpoint", "b"]) == 2
    assert "no endpoint named 'b'" in capsys.readouterr().err
