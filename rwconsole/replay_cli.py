"""``rwconsole wal replay``: arguments, the progress bar and the summary of a replay.

The work is ``rwconsole.replay``; this module picks the endpoint (from a
config file or a bare URL), refuses a data directory another process holds,
shows progress and prints the summary. Exit codes: 0 when everything selected
was accepted, 1 otherwise (failures, damage, interruption), 2 usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from rwconsole.config import schema
from rwconsole.config.secrets import redact_url
from rwconsole.datadir import DataDirLocked, check_unlocked
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE
from rwconsole.replay import (
    Replay,
    ReplayError,
    ReplayOptions,
    ReplaySummary,
    default_progress_path,
)
from rwconsole.wal import tools
from rwconsole.wal.cli import parse_time


def register(wal_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = wal_subparsers.add_parser(
        "replay", help="send a WAL (read-only, resumable) to a remote-write endpoint"
    )
    p.add_argument("dir", metavar="DIR", help="WAL directory or data directory containing wal/")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--config", "-c", metavar="FILE", help="take the endpoint from a config")
    target.add_argument("--url", metavar="URL", help="remote-write URL (no auth, defaults)")
    p.add_argument("--endpoint", metavar="NAME", help="endpoint of --config (name or url)")
    p.add_argument("--from", dest="start", metavar="MS|RFC3339", help="earliest sample time")
    p.add_argument("--to", dest="end", metavar="MS|RFC3339", help="latest sample time")
    p.add_argument("--rate", type=float, metavar="SAMPLES_PER_S", help="limit the sample rate")
    p.add_argument("--protocol", choices=("1.0", "2.0"), help="remote-write version")
    p.add_argument("--progress", metavar="FILE", help="progress file (default: beside DIR)")
    p.add_argument("--restart", action="store_true", help="ignore saved progress, start over")
    p.add_argument("--force", action="store_true", help="replay even if a process holds DIR")
    p.set_defaults(handler=cmd_replay)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> int:
    _err().print(f"[bold red]error:[/] {escape(message)}")
    return EXIT_USAGE


def pick_endpoint(
    args: argparse.Namespace,
) -> tuple[schema.EndpointConfig, dict[str, str], float] | str:
    """The endpoint, the external labels and the flush deadline, or an error message."""
    if args.url:
        if args.endpoint:
            return "--endpoint only goes with --config"
        endpoint = schema.EndpointConfig(url=args.url)
        labels: dict[str, str] = {}
        deadline = 60.0
    else:
        from rwconsole.config.errors import ConfigError, ConfigFileError
        from rwconsole.config.load import load_config

        try:
            config = load_config(args.config)
        except ConfigError as err:
            return str(err)
        except ConfigFileError as err:
            return f"cannot read config {err}"
        endpoints = config.endpoint
        if args.endpoint:
            endpoints = [e for e in endpoints if args.endpoint in (e.queue_name(), e.name, e.url)]
        if not endpoints:
            wanted = f" named {args.endpoint!r}" if args.endpoint else ""
            return f"{args.config}: no endpoint{wanted}"
        if len(endpoints) > 1:
            names = ", ".join(e.queue_name() for e in endpoints)
            return f"{args.config} has several endpoints ({names}); pick one with --endpoint"
        endpoint = endpoints[0]
        labels = dict(config.external_labels)
        deadline = 60.0
    if args.protocol:
        message = schema.PROTOBUF_V2 if args.protocol == "2.0" else schema.PROTOBUF_V1
        endpoint = _replace(endpoint, protobuf_message=message)
    return endpoint, labels, deadline


def _replace(endpoint: schema.EndpointConfig, **changes: object) -> schema.EndpointConfig:
    import dataclasses

    return dataclasses.replace(endpoint, **changes)  # type: ignore[arg-type]


def _check_lock(directory: Path, wal_dir: Path) -> str | None:
    for candidate in dict.fromkeys((directory, wal_dir.parent)):
        try:
            check_unlocked(candidate)
        except DataDirLocked as err:
            return f"{err}; stop it first or pass --force"
        except OSError:
            continue
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        wal_dir = tools.resolve_wal_dir(args.dir)
    except (OSError, tools.NotAWalError) as exc:
        return _fail(str(exc))
    try:
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to")
    except ValueError as exc:
        return _fail(str(exc))
    if start is not None and end is not None and start > end:
        return _fail("--from is later than --to")
    if args.rate is not None and not args.rate > 0:
        return _fail("--rate must be a positive number of samples per second")
    picked = pick_endpoint(args)
    if isinstance(picked, str):
        return _fail(picked)
    endpoint, external_labels, deadline = picked
    if not args.force:
        locked = _check_lock(Path(args.dir), wal_dir)
        if locked:
            return _fail(locked)
    progress_path = (
        Path(args.progress)
        if args.progress
        else default_progress_path(args.dir, endpoint.queue_name())
    )
    options = ReplayOptions(
        start_ms=start, end_ms=end, rate=args.rate, restart=args.restart, flush_deadline=deadline
    )
    from rwconsole.engine import USER_AGENT
    from rwconsole.http.errors import ConnectivityConfigError

    try:
        replay = Replay(
            wal_dir,
            endpoint,
            progress_path,
            options,
            external_labels=external_labels,
            user_agent=USER_AGENT,
        )
    except ReplayError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read the WAL: {exc}")
    try:
        summary = asyncio.run(_run(replay))
    except KeyboardInterrupt:
        # Interrupted before the signal handlers were installed (the run saved its progress).
        summary = replay.summary
        summary.interrupted = True
    except ConnectivityConfigError as exc:
        return _fail(f"endpoint {endpoint.queue_name()}: {exc}")
    except OSError as exc:
        _err().print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_BAD
    print_summary(summary, replay, redact_url(endpoint.url))
    return EXIT_OK if summary.ok else EXIT_BAD


async def _run(replay: Replay) -> ReplaySummary:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, replay.stop)
    source = replay.source
    console = _err()
    columns = (
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[samples]} samples read  {task.fields[rate]}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replay", total=max(1, source.bytes_total), samples=0, rate=0)
        work = asyncio.ensure_future(replay.run())
        began = time.monotonic()
        while not work.done():
            await asyncio.wait([work], timeout=0.5)
            elapsed = max(1e-6, time.monotonic() - began)
            bar.update(
                task,
                completed=source.bytes_done,
                samples=f"{source.samples_done:,}",
                rate=f"{source.samples_done / elapsed:,.0f}",
            )
        bar.update(task, completed=source.bytes_total)
        return work.result()


def print_summary(summary: ReplaySummary, replay: Replay, url: str) -> None:
    out = Console(highlight=False, soft_wrap=True)
    if summary.already_done:
        out.print(
            f"{escape(str(replay.wal_dir))} was already replayed to {escape(url)} "
            f"(progress {escape(str(replay.progress_path))}); --restart sends it again"
        )
        return
    out.print(f"replayed {escape(str(replay.wal_dir))} to {escape(url)}")
    read = ", ".join(f"{n:,} {kind}" for kind, n in summary.read.items() if n)
    out.print(f"  read: {read or 'nothing'}")
    out.print(f"  accepted: {summary.accepted:,} items")
    out.print(f"  skipped by time range: {summary.skipped_time:,}")
    for reason, n in sorted(summary.dropped.items()):
        out.print(f"  dropped ({escape(reason)}): {n:,}")
    for reason, n in sorted(summary.failed.items()):
        out.print(f"  [red]failed[/] ({escape(reason)}): {n:,}")
    for problem in summary.undecodable[:10]:
        out.print(f"  [red]undecodable[/]: {escape(problem)}")
    if summary.damage:
        out.print(f"  [red]damaged WAL[/]: {escape(summary.damage)}")
    if summary.interrupted:
        out.print("  [yellow]interrupted[/]: run the same command again to resume")
    elif summary.unfinished:
        out.print("  [yellow]not everything was delivered[/]: run again to resume")
    out.print(f"  progress: {escape(str(replay.progress_path))}")
