"""``rwconsole check-config FILE [--json]``: validate a config and show its effective form.

Exit codes: 0 valid, 1 invalid (every problem listed with its key path and the
file name), 2 when the file cannot be read. The effective config goes to
stdout (TOML, or JSON with ``--json``) with defaults filled in and secrets
redacted; problems and warnings go to stderr (with ``--json`` everything is in
the JSON document on stdout).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import tomli_w
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from rwconsole.cli import err_console
from rwconsole.config.errors import ConfigError, ConfigFileError, Problem, format_path
from rwconsole.config.load import load_config
from rwconsole.config.save import dump_effective
from rwconsole.config.validate import warnings
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "check-config",
        help="validate a config file and print its effective form",
        description="Validate a config file. Prints the effective configuration "
        "(defaults filled in, secrets redacted). Exit 0 valid, 1 invalid, 2 unreadable.",
    )
    parser.add_argument("file", help="config file (TOML)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    as_json: bool = args.json
    out = Console(highlight=False, soft_wrap=True)
    try:
        config = load_config(args.file)
    except ConfigFileError as exc:
        if as_json:
            _print_json(out, {"file": args.file, "valid": False, "error": exc.reason})
        else:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    except ConfigError as exc:
        if as_json:
            problems = [_problem_json(p) for p in exc.problems]
            _print_json(out, {"file": exc.source, "valid": False, "errors": problems})
        else:
            count = len(exc.problems)
            err_console.print(
                f"[bold red]invalid:[/] {escape(exc.source)}: "
                f"{count} problem{'s' if count != 1 else ''}",
                soft_wrap=True,
            )
            for line in exc.lines():
                err_console.print(f"  [red]✗[/] {escape(line)}", soft_wrap=True)
        return EXIT_BAD
    effective = dump_effective(config)
    notes = warnings(config)
    if as_json:
        _print_json(
            out,
            {
                "file": args.file,
                "valid": True,
                "warnings": [_problem_json(p) for p in notes],
                "config": effective,
            },
        )
        return EXIT_OK
    out.print(Syntax(tomli_w.dumps(effective), "toml", theme="ansi_dark", word_wrap=True))
    for note in notes:
        err_console.print(
            f"[yellow]warning:[/] {escape(args.file)}: {escape(note.describe())}", soft_wrap=True
        )
    err_console.print(f"[green]✓[/] {escape(args.file)} is valid", soft_wrap=True)
    return EXIT_OK


def _problem_json(problem: Problem) -> dict[str, Any]:
    data: dict[str, Any] = {"path": format_path(problem.path), "message": problem.message}
    if problem.line is not None:
        data["line"] = problem.line
        data["column"] = problem.column
    return data


def _print_json(console: Console, data: dict[str, Any]) -> None:
    if console.is_terminal:
        console.print_json(json.dumps(data))
    else:
        print(json.dumps(data, indent=2))
