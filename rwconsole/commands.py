"""Subcommand registry: each layer contributes its commands through ``register``."""

from __future__ import annotations

import argparse


def register_all(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from rwconsole.admin import ctl as ctl_cli
    from rwconsole.config import cli as config_cli
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
        "--config), an admin socket, or an http(s):// admin URL.",
    )
    attach.add_argument("target", metavar="TARGET", nargs="?")
    attach.add_argument("--theme-dir", metavar="DIR", help="extra console themes")
    ctl_cli.add_target_options(attach)
    attach.set_defaults(handler=attach_console)

    ctl_cli.register(subparsers)
    config_cli.register(subparsers)
    wal_cli.register(subparsers, open_wal_console)


def run_headless(args: argparse.Namespace) -> int:
    from rwconsole.runner import run_headless as run

    return run(args)


def run_console(args: argparse.Namespace) -> int:
    from rwconsole.tui.launch import run_console as run

    return run(args)


def attach_console(args: argparse.Namespace) -> int:
    from rwconsole.tui.launch import attach

    return attach(args)


def open_wal_console(args: argparse.Namespace) -> int:
    from rwconsole.tui.launch import open_wal

    return open_wal(args.dir, theme_dir=getattr(args, "theme_dir", None))
