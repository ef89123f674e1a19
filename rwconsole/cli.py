"""The ``rwconsole`` command line: parses arguments and dispatches to the layers.

Exit codes are in ``rwconsole.exitcodes``.
Each subcommand module owns its own parser setup and handler; this module only
assembles them, so it stays small.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from rwconsole import __version__
from rwconsole.exitcodes import EXIT_INTERRUPTED, EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are printed with rich and exit with EXIT_USAGE."""

    def error(self, message: str) -> None:  # type: ignore[override]
        err_console.print(f"[bold red]error:[/] {message}")
        err_console.print(f"[dim]see '{self.prog} --help'[/]")
        raise SystemExit(EXIT_USAGE)

    def print_help(self, file: object = None) -> None:  # type: ignore[override]
        Console(highlight=False).print(self.format_help(), markup=False)


def build_parser() -> argparse.ArgumentParser:
    from rwconsole.commands import register_all

    parser = _Parser(
        prog="rwconsole",
        description="Prometheus remote-write forwarder with a live operations console. "
        "With no command, opens the console (on the demo pipeline when no --config is given).",
    )
    parser.add_argument("--version", action="version", version=f"rwconsole {__version__}")
    parser.add_argument("--config", "-c", metavar="FILE", help="forwarder config (TOML)")
    parser.add_argument(
        "--data-dir", metavar="DIR", help="data directory (overrides [storage].path)"
    )
    parser.add_argument(
        "--theme-dir", metavar="DIR", help="extra console themes (also $RWCONSOLE_THEME_DIR)"
    )
    parser.set_defaults(handler=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    register_all(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = args.handler
    if handler is None:
        from rwconsole.commands import run_console

        handler = run_console
    try:
        return handler(args)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
