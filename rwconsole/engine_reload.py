"""Config reload in place: applies ``rwconsole.reload.diff_configs`` to a running engine.

Everything runs on the engine's loop, one reload at a time. Unchanged endpoints
and sources are not touched. Per changed endpoint: a new queue_config goes
through the queue's live apply, new client settings swap its HTTP client (the
old one is closed once its requests have timed out), new relabelling or
external_labels reset its series cache, and any other change (url,
protobuf_message, metadata_config) restarts that endpoint alone at its
delivered position. Removed endpoints flush and stop with their position kept;
added ones start like at startup. Scrape targets start and stop alone through
the scrape manager; only removed targets' series get staleness markers. The
receiver and the generator restart (or retune) alone. Restart-only keys are
reported and left as they run.

A config that does not load, a client that cannot be built or a receiver
address that cannot be bound fails the reload before anything else changed;
the report says why and the engine keeps running. The outcome is exposed as
``rwconsole_config_last_reload_successful`` and
``rwconsole_config_last_reload_success_timestamp_seconds`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rwconsole.config import schema
from rwconsole.config.errors import ConfigError, ConfigFileError
from rwconsole.labels import make_labels
from rwconsole.metrics import Gauge, Registry
from rwconsole.reload import ConfigDiff, diff_configs, effective
from rwconsole.remote.spool import budget_bytes
from rwconsole.snapshot import ReloadReport

if TYPE_CHECKING:
    from rwconsole.engine import Engine, _Endpoint
    from rwconsole.remote.client import RemoteWriteClient

log = logging.getLogger("rwconsole.engine")

LIFECYCLE_DISABLED = "Lifecycle API is not enabled.\n"


class ReloadFailed(Exception):
    """The new config cannot be applied; nothing was changed (message says why)."""


def define_reload_metrics(registry: Registry) -> tuple[Gauge, Gauge]:
    """(last_reload_successful, last_reload_success_timestamp_seconds)."""
    ok = registry.gauge(
        "rwconsole_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
    ).labels()
    when = registry.gauge(
        "rwconsole_config_last_reload_success_timestamp_seconds",
        "Timestamp of the last successful configuration reload.",
    ).labels()
    assert isinstance(ok, Gauge) and isinstance(when, Gauge)
    return ok, when


async def reload_engine(engine: Engine, source: schema.Config | str | Path | None) -> ReloadReport:
    """Load ``source`` (None: the engine's config file) and apply it; never raises."""
    async with engine.reload_lock:
        try:
            config = await _load(engine, source)
            diff, rebuilt = await _apply(engine, config)
        except ReloadFailed as err:
            return _failed(engine, str(err))
        except Exception as err:  # a bug must not take the running pipeline down
            log.exception("applying the reloaded config failed")
            return _failed(engine, f"applying the new config failed: {err}")
    engine.reload_successful.set(1)
    engine.reload_success_time.set(time.time())
    # Files behind unchanged settings may have changed too (rotated certificates).
    tls_lines = await asyncio.to_thread(engine.check_tls_files)
    report = ReloadReport(True, (*diff.describe(), *rebuilt, *tls_lines), diff.restart_needed)
    log.info("%s", report.summary())
    if diff.restart_needed:
        log.warning(
            "config reload: %s changed; applied only by a restart (kept as running)",
            ", ".join(diff.restart_needed),
        )
    return report


async def lifecycle_reload(engine: Engine, method: str) -> tuple[int, str]:
    """``POST|PUT /-/reload``: (HTTP status, body) as Prometheus answers it."""
    if method not in ("POST", "PUT"):
        return 405, "Only POST or PUT requests allowed.\n"
    if not engine.config.http.enable_lifecycle:
        return 403, LIFECYCLE_DISABLED
    report = await reload_engine(engine, None)
    return (200 if report.ok else 500), report.summary() + "\n"


def _failed(engine: Engine, reason: str) -> ReloadReport:
    engine.reload_successful.set(0)
    report = ReloadReport(False, error=reason)
    log.error("%s", report.summary())
    return report


async def _load(engine: Engine, source: schema.Config | str | Path | None) -> schema.Config:
    if isinstance(source, schema.Config):
        return source
    path = source if source is not None else engine.config_path
    if path is None:
        raise ReloadFailed("there is no config file to reload (demo pipeline)")
    from rwconsole.config.load import load_config

    try:
        return await asyncio.to_thread(load_config, path)
    except ConfigError as err:
        raise ReloadFailed(str(err)) from None
    except ConfigFileError as err:
        raise ReloadFailed(f"cannot read config {err}") from None


async def _apply(engine: Engine, new: schema.Config) -> tuple[ConfigDiff, list[str]]:
    """The diff applied, and lines on the scrape jobs built again after failing."""
    from rwconsole.sources.scrape import ScrapeManager

    old = engine.config
    if engine.demo_receiver is not None:
        new = dataclasses.replace(new, endpoint=[*new.endpoint, *engine.demo_endpoints])
    diff = diff_configs(old, new)
    target = effective(old, new)
    configs = {e.queue_name(): e for e in target.endpoint}
    fresh = [*diff.endpoints_added, *(c.name for c in diff.endpoints_changed if c.restart)]
    swapped = [c.name for c in diff.endpoints_changed if c.client and not c.restart]
    clients = await _build_clients(configs, [*fresh, *swapped])
    try:
        if diff.receiver:
            await _restart_receiver(engine, old.receiver, target.receiver)
    except ReloadFailed:
        await _close_all(clients.values())
        raise
    # Sources first: the staleness markers of removed targets still reach the endpoints
    # that had their series, and not the endpoints this reload adds.
    manager = _find(engine, ScrapeManager)
    failed = manager.job_errors() if manager is not None else {}
    if (
        diff.scrape_jobs_changed
        or diff.targets_added
        or diff.targets_removed
        or diff.scrape_defaults
        or failed
    ):
        await _apply_scrape(engine, target)
    rebuilt = _rebuilt_jobs(engine, failed, set(diff.scrape_jobs_changed))
    if diff.synthetic:
        await _apply_synthetic(engine, diff.synthetic, target.synthetic)
    engine.config = target
    engine.spool_budget.max_bytes = budget_bytes(target.wal)
    await _apply_endpoints(engine, diff, configs, clients, set(fresh))
    assert engine.progress is not None
    engine.progress.save(force=True)
    return diff, rebuilt


def _rebuilt_jobs(engine: Engine, failed: dict[str, str], changed: set[str]) -> list[str]:
    """Report lines for unchanged scrape jobs that had failed to build and were built again."""
    from rwconsole.sources.scrape import ScrapeManager

    manager = _find(engine, ScrapeManager)
    errors = manager.job_errors() if manager is not None else {}
    lines = []
    for name in failed:
        if name in changed:
            continue  # reported as changed
        if name in errors:
            lines.append(f"scrape job {name} built again, still failing: {errors[name]}")
        elif manager is not None and name in manager.job_names():
            lines.append(f"scrape job {name} built again after failing (running now)")
    return lines


async def _build_clients(
    configs: dict[str, schema.EndpointConfig], names: list[str]
) -> dict[str, RemoteWriteClient]:
    from rwconsole.engine import USER_AGENT
    from rwconsole.remote.client import RemoteWriteClient

    clients: dict[str, RemoteWriteClient] = {}
    for name in names:
        try:
            clients[name] = RemoteWriteClient(configs[name], user_agent=USER_AGENT)
        except (ValueError, OSError) as err:
            await _close_all(clients.values())
            raise ReloadFailed(f"endpoint {name}: {err}") from None
    return clients


async def _close_all(clients: Any) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _apply_endpoints(
    engine: Engine,
    diff: ConfigDiff,
    configs: dict[str, schema.EndpointConfig],
    clients: dict[str, RemoteWriteClient],
    fresh: set[str],
) -> None:
    from rwconsole.engine import relabel_function

    running = {e.queue.name: e for e in engine.endpoints}
    leaving = [running.pop(name) for name in [*diff.endpoints_removed, *fresh] if name in running]
    # Out of the fan-out first: a stopping queue gets no new chunks.
    engine.endpoints = [e for e in engine.endpoints if e.queue.name in running]
    await asyncio.gather(*(_stop_endpoint(engine, e) for e in leaving))
    external = make_labels(engine.config.external_labels)
    for change in diff.endpoints_changed:
        endpoint = running.get(change.name)
        if endpoint is None:
            continue
        config = configs[change.name]
        if change.retune:
            await endpoint.queue.apply_settings(config.queue_config)
        if change.client:
            _swap_client(engine, endpoint, clients[change.name], config.remote_timeout)
        if change.labelling and not diff.external_labels:
            endpoint.queue.relabel_series(
                external,
                relabel_function(config),
                send_exemplars=config.send_exemplars,
                send_native_histograms=config.send_native_histograms,
            )
        endpoint.config = config
    if diff.external_labels:
        for endpoint in running.values():
            endpoint.queue.relabel_series(
                external,
                relabel_function(endpoint.config),
                send_exemplars=endpoint.config.send_exemplars,
                send_native_histograms=endpoint.config.send_native_histograms,
            )
    ordered: list[_Endpoint] = []
    for index, (name, config) in enumerate(configs.items()):
        endpoint = running.get(name)
        if endpoint is None:
            endpoint = engine._make_endpoint(index, config, clients[name])
            endpoint.queue.start()
            if endpoint.metadata_sender is not None:
                endpoint.metadata_sender.start()
        endpoint.index = index
        ordered.append(endpoint)
    engine.endpoints = ordered


async def _stop_endpoint(engine: Engine, endpoint: _Endpoint) -> None:
    """Flush within the deadline and stop; the position stays saved for a comeback."""
    queue = endpoint.queue
    if endpoint.metadata_sender is not None:
        await endpoint.metadata_sender.stop()
    await queue.stop(engine.flush_deadline)
    assert engine.progress is not None
    engine.progress.set(queue.name, queue.delivered_position)
    engine.progress.set_delivered_ahead(queue.name, queue.delivered_ahead)
    with contextlib.suppress(Exception):
        await endpoint.client.aclose()
    queue.metrics.unregister()


def _swap_client(
    engine: Engine, endpoint: _Endpoint, client: RemoteWriteClient, timeout: float
) -> None:
    old, endpoint.client = endpoint.client, client
    endpoint.queue.replace_client(client)
    if endpoint.metadata_sender is not None:
        endpoint.metadata_sender.replace_client(client)

    async def close_later() -> None:
        # A request in flight on the old client ends within its timeout; the retry
        # of a failed one already goes through the new client.
        try:
            await asyncio.sleep(timeout + 1.0)
        finally:
            with contextlib.suppress(Exception):
                await old.aclose()

    task = asyncio.create_task(close_later(), name=f"close-client-{endpoint.queue.name}")
    engine._tasks.append(task)


def _find(engine: Engine, kind: type) -> Any:
    return next((s for s in engine.sources if isinstance(s, kind)), None)


def _replace_source(engine: Engine, old: Any, new: Any) -> None:
    sources = [s for s in engine.sources if s is not old]
    if new is not None:
        sources.append(new)
    engine.sources = sources


async def _restart_receiver(
    engine: Engine, old: schema.ReceiverConfig | None, new: schema.ReceiverConfig | None
) -> None:
    """Stop the receiver and listen again; on failure listen where it did and raise."""
    from rwconsole.engine import EngineError
    from rwconsole.sources.receiver import RemoteWriteReceiver

    running = _find(engine, RemoteWriteReceiver)
    receiver = None
    if new is not None:
        try:  # TLS files and secrets are read here, before the running one stops
            receiver = engine.make_receiver(new)
        except EngineError as err:
            raise ReloadFailed(str(err)) from None
    if running is not None:
        await running.stop()
    if new is None or receiver is None:
        _replace_source(engine, running, None)
        return
    try:
        await receiver.start()
    except OSError as err:
        if running is not None and old is not None:
            back = engine.make_receiver(old)
            await back.start()
            _replace_source(engine, running, back)
        raise ReloadFailed(
            f"receiver.listen_address: cannot listen on {new.listen_address}: {err.strerror or err}"
        ) from None
    _replace_source(engine, running, receiver)


async def _apply_scrape(engine: Engine, target: schema.Config) -> None:
    from rwconsole.sources.scrape import ScrapeManager

    configs = target.scrape
    manager = _find(engine, ScrapeManager)
    if manager is None:
        if not configs:
            return
        manager = ScrapeManager(engine.appender, defaults=target.scrape_defaults)
        engine.sources = [*engine.sources, manager]
    await manager.apply(
        configs, defaults=target.scrape_defaults
    )  # removed targets' series are marked stale there
    if not configs:
        await manager.stop()
        _replace_source(engine, manager, None)


async def _apply_synthetic(
    engine: Engine, change: str, config: schema.SyntheticConfig | None
) -> None:
    from rwconsole.sources.synthetic import SyntheticSource

    running = _find(engine, SyntheticSource)
    if change == "retuned" and running is not None and config is not None:
        running.set_series(config.series)
        running.set_interval(config.interval)
        running.set_churn(config.churn)
        return
    if running is not None:
        await running.stop(stale=True)  # other series replace these
    started = None
    if config is not None:
        started = SyntheticSource.from_config(config, engine.appender)
        started.start()
    _replace_source(engine, running, started)
