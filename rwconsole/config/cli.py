"""``rwconsole check-config FILE [--json] [--resolve]``: validate a config, show its effective form.

Exit codes: 0 valid, 1 invalid (every problem listed with its key path and the
file name), 2 when the file cannot be read. The effective config goes to
stdout (TOML, or JSON with ``--json``) with defaults filled in and secrets
redacted; problems and warnings go to stderr (with ``--json`` everything is in
the JSON document on stdout).

By default nothing outside the file is needed (a CI job linting a config
repository has no secrets): ``{ env = … }`` and ``{ file = … }`` references are
not read, and one whose variable or file is missing here is only a warning.
``--resolve`` checks what ``run`` needs: every reference must resolve, and TLS
CA files and client certificate/key pairs must load (a key that does not match
its certificate is reported).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import tomli_w
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from rwconsole.cli import err_console
from rwconsole.config.errors import ConfigError, ConfigFileError, Problem, format_path
from rwconsole.config.load import load_config
from rwconsole.config.save import dump_effective
from rwconsole.config.schema import Config, TLSConfig
from rwconsole.config.validate import iter_instances, iter_secrets, warnings
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
    parser.add_argument(
        "--resolve",
        action="store_true",
        help="resolve env/file secret references (missing ones are errors) and load TLS files",
    )
    parser.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    as_json: bool = args.json
    out = Console(highlight=False, soft_wrap=True)
    resolve: bool = args.resolve
    try:
        config = load_config(args.file, check_secrets=resolve)
        if resolve:
            tls = _tls_problems(config)
            if tls:
                raise ConfigError(args.file, tls)
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
    if not resolve:
        notes += _missing_references(config)
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


def _missing_references(config: Config) -> list[Problem]:
    """Secret references whose variable or file is absent here (nothing is read)."""
    found = []
    for path, secret in iter_secrets(config):
        ref = secret.reference
        if ref is None:
            continue
        if "env" in ref and ref["env"] not in os.environ:
            message = f"environment variable {ref['env']} is not set here"
        elif "file" in ref and not secret.file_path().is_file():
            message = f"secret file {str(secret.file_path())!r} does not exist here"
        else:
            continue
        found.append(Problem(path, f"{message} (not resolved; --resolve requires it)"))
    return found


def _tls_problems(config: Config) -> list[Problem]:
    """Every tls_config block that cannot be loaded as ``run`` loads it."""
    from rwconsole.http.errors import ConnectivityConfigError
    from rwconsole.http.tls import build_ssl_context

    problems = []
    for path, block in iter_instances(config, TLSConfig):
        key = format_path(path)
        try:
            build_ssl_context(block, key=key)
        except ConnectivityConfigError as exc:
            # "<key>.cert_file/key_file: cannot load …" → path <key>, message "cert_file/…"
            message = str(exc).removeprefix(key).lstrip(".:").strip()
            problems.append(Problem(path, message))
    return problems


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
