"""Starting the console: from the CLI (engine + app) or as a WAL viewer alone."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from rwconsole.cli import err_console
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from textual.app import App


def run_console(args: argparse.Namespace) -> int:
    """The default command and ``rwconsole demo``: run the engine and the console on it."""
    from rwconsole.engine import Engine, EngineError
    from rwconsole.tui.app import ConsoleApp

    config_path: str | None = getattr(args, "config", None)
    data_dir: str | None = getattr(args, "data_dir", None)
    scratch: str | None = None
    """The demo's temporary data directory, removed on exit (never one the user named)."""
    if config_path is None:
        from rwconsole.pipelines import demo_config

        config = demo_config(data_dir)
        if data_dir is None:
            scratch = config.storage.path
        data_dir = config.storage.path
    else:
        if not Path(config_path).is_file():
            err_console.print(f"[bold red]error:[/] config file not found: {escape(config_path)}")
            return EXIT_USAGE
        from rwconsole.runner import load_or_report

        loaded = load_or_report(config_path)
        if loaded is None:
            return EXIT_BAD
        config = loaded
    # Log records go to the console's Logs screen, not over the full-screen UI.
    logging.getLogger("rwconsole").setLevel(logging.INFO)
    logging.getLogger("rwconsole").propagate = False
    engine = Engine(config, config_path=config_path, data_dir=data_dir)
    try:
        try:
            engine.start()
        except EngineError as err:
            engine.stop()
            err_console.print(
                f"[bold red]cannot start the forwarder:[/] {escape(str(err))}", highlight=False
            )
            return EXIT_BAD
        app = ConsoleApp(
            engine,
            config_path=config_path,
            theme_dir=getattr(args, "theme_dir", None),
        )
        try:
            app.run()
        finally:
            err_console.print("[dim]stopping the forwarder (flushing queues)…[/]")
            engine.stop()
    finally:
        if scratch is not None and not engine.running:  # never under a live engine
            shutil.rmtree(scratch, ignore_errors=True)
    return _exit_code(app)


def open_wal(directory: str | Path, *, theme_dir: str | Path | None = None) -> int:
    """``rwconsole wal open DIR``: the console's WAL screen on ``directory``, no engine."""
    from rwconsole.tui.app import ConsoleApp
    from rwconsole.wal.tools import NotAWalError, resolve_wal_dir

    try:
        wal_dir = resolve_wal_dir(directory)
    except (OSError, NotAWalError) as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_USAGE
    app = ConsoleApp(None, wal_dir=wal_dir, theme_dir=theme_dir)
    app.run()
    return EXIT_OK


def run_peer_console(
    url: str, wal_dir: str | Path | None = None, theme_dir: str | Path | None = None
) -> int:
    """``rwconsole attach --metrics URL``: the console on a peer's metrics, read-only."""
    from rwconsole.peer import PeerEngine, PeerError
    from rwconsole.tui.app import ConsoleApp
    from rwconsole.wal.tools import NotAWalError, resolve_wal_dir

    resolved = ""
    if wal_dir is not None:
        try:
            resolved = str(resolve_wal_dir(wal_dir))
        except (OSError, NotAWalError) as err:
            err_console.print(f"[bold red]error:[/] --wal: {escape(str(err))}", highlight=False)
            return EXIT_USAGE
    if not url.startswith(("http://", "https://")):
        err_console.print(
            f"[bold red]error:[/] --metrics: {escape(repr(url))} is not an http:// or https:// URL",
            highlight=False,
        )
        return EXIT_USAGE
    engine = PeerEngine(url, wal_dir=resolved)
    try:
        engine.start()
    except PeerError as err:
        err_console.print(f"[bold red]cannot attach:[/] {escape(str(err))}", highlight=False)
        return EXIT_BAD
    try:
        app = ConsoleApp(engine, wal_dir=resolved or None, theme_dir=theme_dir)
        app.run()
    finally:
        engine.stop()
    return _exit_code(app)


def attach(args: argparse.Namespace) -> int:
    """``rwconsole attach [TARGET]``: the console on a running engine, over its admin API."""
    from rwconsole.admin.client import AdminError, RemoteEngine, RemoteTools
    from rwconsole.admin.ctl import target_from_args
    from rwconsole.exitcodes import EXIT_UNREACHABLE
    from rwconsole.tui.app import ConsoleApp

    text = args.target or getattr(args, "data_dir", None)
    if text is None:
        text = _configured_data_dir(getattr(args, "config", None))
        if text is None:
            return EXIT_USAGE
    try:
        target = target_from_args(text, args)
    except ValueError as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_USAGE
    remote = RemoteEngine(target)
    try:
        remote.start()
    except AdminError as err:
        err_console.print(f"[bold red]cannot attach:[/] {escape(str(err))}", highlight=False)
        return EXIT_UNREACHABLE
    try:
        app = ConsoleApp(
            remote,
            config_path=remote.info.get("config_path") or None,
            theme_dir=getattr(args, "theme_dir", None),
        )
        app.tools = RemoteTools(remote)  # type: ignore[assignment]
        app.run()
    finally:
        remote.stop()
    return _exit_code(app)


def _configured_data_dir(config_path: str | None) -> str | None:
    """The data directory of ``--config`` (or the default one); None: reported."""
    from rwconsole.config.schema import StorageConfig

    if config_path is None:
        return StorageConfig().path
    from rwconsole.runner import load_or_report

    config = load_or_report(config_path)
    return None if config is None else config.storage.path


def _exit_code(app: App[int]) -> int:
    """The console's exit code: what the app returned, ``EXIT_OK`` when it returned nothing."""
    return int(app.return_code or EXIT_OK)
