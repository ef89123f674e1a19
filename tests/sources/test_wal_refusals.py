"""Sources when the WAL refuses a commit (disk full, size limit): back-pressure, no traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from src_helpers import V1_TYPE, RecordingAppender, TargetServer, WireSeries, encode_v1

from rwconsole.labels import make_labels
from rwconsole.model import WalAppendError
from rwconsole.sources.receiver import WAL_RETRY_AFTER_SECONDS, RemoteWriteReceiver
from rwconsole.sources.scrape import ScrapeLoop
from tests.sources.test_scrape_loop import Clock, scrape_config

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RefusingAppender(RecordingAppender):
    """Refuses commits while ``refusing`` is set, dropping what was appended (as the WAL does)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing: WalAppendError | None = None

    def commit(self) -> None:
        if self.refusing is not None:
            self._pending = {"s": [], "e": [], "h": [], "m": []}
            raise self.refusing
        super().commit()


async def test_receiver_answers_503_with_retry_after_and_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = RefusingAppender()
    rx = RemoteWriteReceiver(app, "127.0.0.1:0")
    await rx.start()
    body = encode_v1([WireSeries(make_labels({"__name__": "a"}), [(1000, 1.0)])])
    headers = {"Content-Type": V1_TYPE, "Content-Encoding": "snappy"}
    write_url = f"http://127.0.0.1:{rx.port}/api/v1/write"
    try:
        async with httpx.AsyncClient() as client:
            app.refusing = WalAppendError("disk_full", "/data/wal/00000003")
            with caplog.at_level(logging.DEBUG):
                refused = await client.post(write_url, content=body, headers=headers)
            app.refusing = None
            taken = await client.post(write_url, content=body, headers=headers)
    finally:
        await rx.stop()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == str(WAL_RETRY_AFTER_SECONDS)
    assert refused.text == "WAL disk full: /data/wal/00000003\n"
    assert "Traceback" not in caplog.text
    assert taken.status_code == 204
    assert app.series() == {make_labels({"__name__": "a"}): [(1000, 1.0)]}
    assert rx.stats().by_status == {503: 1, 204: 1}


async def test_a_scrape_the_wal_refuses_is_counted_on_its_target(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    app = RefusingAppender()
    target = TargetServer()
    await target.start()
    async with httpx.AsyncClient() as client:
        loop = ScrapeLoop(scrape_config(), target.address, app, client, clock=clock)
        target.body = 'a{x="1"} 1\n'
        app.refusing = WalAppendError("size_limit", "/data/wal")
        with caplog.at_level(logging.DEBUG):
            assert not await loop.scrape_once()
        status = loop.status()
        assert status.last_error == "WAL size limit reached: /data/wal"
        assert status.append_failures == 1 and status.health == "down"
        assert "Traceback" not in caplog.text
        app.refusing = None
        clock.now += 1
        assert await loop.scrape_once()
    await target.stop()
    status = loop.status()
    assert status.health == "up" and status.append_failures == 1 and status.last_error == ""
    assert [v for _, v in next(iter(app.named("a").values()))] == [1.0]
