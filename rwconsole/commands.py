"""Subcommand registry: each layer contributes its commands through ``register``.

Also the commands that wire several layers together outside the engine:
``wal replay`` (a WAL read by ``rwconsole.wal``, sent by ``rwconsole.remote``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from rwconsole.datadir import DataDirLocked, check_unlocked
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE


def register_all(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from rwconsole.admin import ctl as ctl_cli
    from rwconsole.config import cli as config_cli
    from rwconsole.config import import_cli
    from rwconsole.wal import cli as wal_cli

    run = subparsers.add_parser("run", help="run the forwarder headless (no console)")
    run.add_argument("--config", "-c", metavar="FILE", required=True, help="forwarder config")
    run.add_argument("--data-dir", metavar="DIR", help="data directory (overrides [storage].path)")
    run.set_defaults(handler=run_headless)

    demo = subparsers.add_parser("demo", help="open the console on the demo pipeline")
    demo.add_argument("--data-dir", metavar="DIR", help="data directory (default: a temporary one)")
    demo.add_argument("--theme-dir", metavar="DIR", help="extra console themes")
    demo.set_defaults(handler=run_console, config=None)

    attach = subparsers.add_parser(
        "attach",
        help="open the console on a running forwarder",
        description="TARGET: a data directory (default: --data-dir, or [storage].path of "
        "--config), an admin socket, or an http(s):// admin URL. With --metrics URL instead: "
        "read-only, on any forwarder that exposes prometheus_remote_storage_* metrics "
        "(Prometheus agent or server, Alloy).",
    )
    attach.add_argument("target", metavar="TARGET", nargs="?")
    attach.add_argument(
        "--metrics", metavar="URL", help="a peer's metrics page, e.g. http://host:9090/metrics"
    )
    attach.add_argument("--wal", metavar="DIR", help="with --metrics: the peer's WAL, read-only")
    attach.add_argument("--theme-dir", metavar="DIR", help="extra console themes")
    ctl_cli.add_target_options(attach)
    attach.set_defaults(handler=attach_console)

    ctl_cli.register(subparsers)
    config_cli.register(subparsers)
    import_cli.register(subparsers)
    wal_cli.register(subparsers, open_wal_console, replay_wal)


def run_headless(args: argparse.Namespace) -> int:
    from rwconsole.runner import run_headless as run

    return run(args)


def run_console(args: argparse.Namespace) -> int:
    from rwconsole.tui.launch import run_console as run

    return run(args)


def open_wal_console(args: argparse.Namespace) -> int:
    from rwconsole.tui.launch import open_wal

    return open_wal(args.dir, theme_dir=getattr(args, "theme_dir", None))


def attach_console(args: argparse.Namespace) -> int:
    from rwconsole.cli import err_console
    from rwconsole.exitcodes import EXIT_USAGE
    from rwconsole.tui.launch import attach, run_peer_console

    if args.metrics is None:
        if args.wal is not None:
            err_console.print("[bold red]error:[/] attach: --wal goes with --metrics")
            return EXIT_USAGE
        return attach(args)
    if args.target is not None:
        err_console.print("[bold red]error:[/] attach: give either TARGET or --metrics, not both")
        return EXIT_USAGE
    return run_peer_console(args.metrics, args.wal, getattr(args, "theme_dir", None))


# ---- wal replay ---------------------------------------------------------------------


def _replay_target(args: argparse.Namespace) -> tuple[Any, dict[str, str]] | str:
    """The endpoint and the external labels to replay with, or an error message."""
    from rwconsole.config import schema

    if args.url:
        if args.endpoint:
            return "--endpoint only goes with --config"
        endpoint = schema.EndpointConfig(url=args.url)
        labels: dict[str, str] = {}
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
    if args.protocol:
        message = schema.PROTOBUF_V2 if args.protocol == "2.0" else schema.PROTOBUF_V1
        endpoint = dataclasses.replace(endpoint, protobuf_message=message)
    return endpoint, labels


def _held_by_another(directory: Path, wal_dir: Path) -> str | None:
    for candidate in dict.fromkeys((directory, wal_dir.parent)):
        try:
            check_unlocked(candidate)
        except DataDirLocked as err:
            return f"{err}; stop it first or pass --force"
        except OSError:
            continue
    return None


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _usage_error(message: str) -> int:
    _err().print(f"[bold red]error:[/] {escape(message)}")
    return EXIT_USAGE


def replay_wal(args: argparse.Namespace) -> int:
    """``rwconsole wal replay``: wires a read-only WAL to one endpoint's queue."""
    from rwconsole.wal import tools
    from rwconsole.wal.cli import parse_time

    try:
        wal_dir = tools.resolve_wal_dir(args.dir)
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to")
    except (OSError, tools.NotAWalError, ValueError) as exc:
        return _usage_error(str(exc))
    if start is not None and end is not None and start > end:
        return _usage_error("--from is later than --to")
    if args.rate is not None and not 0 < args.rate < float("inf"):
        return _usage_error("--rate must be a positive number of samples per second")
    picked = _replay_target(args)
    if isinstance(picked, str):
        return _usage_error(picked)
    endpoint, external_labels = picked
    if not args.force:
        held = _held_by_another(Path(args.dir), wal_dir)
        if held:
            return _usage_error(held)

    from rwconsole.engine import USER_AGENT
    from rwconsole.http.errors import ConnectivityConfigError
    from rwconsole.remote import replay as rp

    progress = (
        Path(args.progress)
        if args.progress
        else rp.default_progress_path(args.dir, endpoint.queue_name())
    )
    options = rp.ReplayOptions(start_ms=start, end_ms=end, rate=args.rate, restart=args.restart)
    try:
        replay = rp.Replay(
            wal_dir,
            endpoint,
            progress,
            options,
            external_labels=external_labels,
            user_agent=USER_AGENT,
        )
    except rp.ReplayError as exc:
        return _usage_error(str(exc))
    except OSError as exc:
        return _usage_error(f"cannot read the WAL: {exc}")
    try:
        summary = asyncio.run(_run_replay(replay))
    except KeyboardInterrupt:
        # Interrupted before the signal handlers were installed (the run saved its progress).
        summary = replay.summary
        summary.interrupted = True
    except ConnectivityConfigError as exc:
        return _usage_error(f"endpoint {endpoint.queue_name()}: {exc}")
    except OSError as exc:
        _err().print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_BAD
    _print_replay_summary(replay, summary)
    return EXIT_OK if summary.ok else EXIT_BAD


async def _run_replay(replay: Any) -> Any:
    """Run ``replay`` with a progress bar on stderr; SIGINT/SIGTERM end it early."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, replay.stop)
    source = replay.source
    columns = (
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[samples]} samples read  {task.fields[rate]}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err(), transient=False) as bar:
        task = bar.add_task("replay", total=max(1, source.bytes_total), samples="0", rate="0")
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


def _print_replay_summary(replay: Any, summary: Any) -> None:
    from rwconsole.config.secrets import redact_url

    out = _out()
    where, url = escape(str(replay.wal_dir)), escape(redact_url(replay.endpoint.url))
    if summary.already_done:
        out.print(
            f"{where} was already replayed to {url} (progress "
            f"{escape(str(replay.progress_path))}); --restart sends it again"
        )
        return
    out.print(f"replayed {where} to {url}")
    read = ", ".join(f"{n:,} {kind}" for kind, n in summary.read.items() if n)
    out.print(f"  read: {read or 'nothing'}")
    out.print(f"  accepted: {summary.accepted:,} items")
    skipped = ", ".join(f"{n:,} {kind}" for kind, n in summary.skipped_time.items() if n)
    out.print(f"  skipped by time range: {skipped or 'nothing'}")
    for reason, n in sorted(summary.dropped.items()):
        out.print(f"  dropped ({escape(reason)}): {n:,}")
    for reason, n in sorted(summary.failed.items()):
        out.print(f"  [red]failed[/] ({escape(reason)}): {n:,}")
    for problem in summary.undecodable[:10]:
        out.print(f"  [red]undecodable[/]: {escape(problem)}")
    if summary.missing:
        names = ", ".join(summary.missing[:10]) + (" …" if len(summary.missing) > 10 else "")
        out.print(
            f"  [red]missing segments[/] ({len(summary.missing)}): {escape(names)}; what they "
            "held could not be sent, and samples after them of series first written there "
            "are dropped as unknown"
        )
    if summary.damage:
        out.print(f"  [red]damaged WAL[/]: {escape(summary.damage)}")
    if summary.interrupted:
        out.print("  [yellow]interrupted[/]: run the same command again to resume")
    elif summary.unfinished:
        out.print("  [yellow]not everything was delivered[/]: run again to resume")
    out.print(f"  progress: {escape(str(replay.progress_path))}")
