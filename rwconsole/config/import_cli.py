"""``rwconsole import prometheus FILE.yml [-o OUT.toml]``: convert a Prometheus config.

Writes the TOML (to ``OUT`` or stdout) with the report as a comment header, and
prints the report to stderr: environment variables to set, settings not carried
over, and any problem ``check-config`` finds in the result. Exit codes: 0
converted and valid, 1 the input is invalid or the result fails
``check-config`` (the result is still written, for editing), 2 usage (unreadable
input, ``OUT`` exists without ``--force`` or cannot be written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from rwconsole.config.errors import ConfigError, Problem
from rwconsole.config.import_prometheus import (
    ImportResult,
    PrometheusConfigError,
    PrometheusFileError,
    import_prometheus,
)
from rwconsole.config.load import config_from_dict, parse_toml
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE

# Its own stderr console, so that this module stays in the config layer (no rwconsole.cli).
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "import",
        help="convert another tool's configuration into rwconsole's TOML",
        description="Convert another tool's configuration into rwconsole's TOML.",
    )
    kinds = parser.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    prometheus = kinds.add_parser(
        "prometheus",
        help="convert a prometheus.yml (global, scrape_configs, remote_write)",
        description="Convert a prometheus.yml. Secrets written inline become environment "
        "variable references (listed) unless --inline-secrets; *_file settings become file "
        "references. Every setting that is not carried over is listed. Exit 0 converted and "
        "valid, 1 invalid input or result, 2 usage.",
    )
    prometheus.add_argument("file", help="Prometheus config file (YAML)")
    prometheus.add_argument("-o", "--output", metavar="OUT", help="write the TOML here")
    prometheus.add_argument(
        "--inline-secrets",
        action="store_true",
        help="keep secrets written inline in the input as values in the output",
    )
    prometheus.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    prometheus.set_defaults(handler=import_prometheus_command)


def import_prometheus_command(args: argparse.Namespace) -> int:
    output: str | None = args.output
    if output and Path(output).exists() and not args.force:
        err_console.print(
            f"[bold red]error:[/] {escape(output)} exists (use --force to replace it)"
        )
        return EXIT_USAGE
    try:
        result = import_prometheus(args.file, inline_secrets=args.inline_secrets)
    except PrometheusFileError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    except PrometheusConfigError as exc:
        err_console.print(f"[bold red]invalid:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_BAD
    text = result.toml_text()
    problems = check_result(text, output)
    if output:
        try:
            _write(Path(output), text, private=bool(result.inline_secrets))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            err_console.print(f"[bold red]error:[/] cannot write {escape(output)}: {reason}")
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    _report(result, problems, output or "the output")
    return EXIT_BAD if problems else EXIT_OK


def check_result(text: str, output: str | None) -> list[Problem]:
    """What ``check-config`` reports about the converted text (secrets are not resolved)."""
    source = output or "<output>"
    base_dir = Path(output).resolve().parent if output else None
    try:
        config_from_dict(parse_toml(text, source), source, check_secrets=False, base_dir=base_dir)
    except ConfigError as exc:
        return exc.problems
    return []


def _write(path: Path, text: str, *, private: bool) -> None:
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if private:  # before the secrets are in it: a replaced file keeps its old mode
            os.fchmod(fd, mode)
        handle.write(text)


def _report(result: ImportResult, problems: list[Problem], where: str) -> None:
    if result.env_secrets:
        err_console.print("[bold]Set these environment variables[/] (inline secrets):")
        for secret in result.env_secrets:
            err_console.print(f"  [cyan]{secret.variable}[/]  ← {escape(secret.path)}")
    if result.inline_secrets:
        err_console.print("[bold]Secrets kept inline[/] (the file is readable by its owner only):")
        for path in result.inline_secrets:
            err_console.print(f"  {escape(path)}")
    if result.skipped:
        err_console.print(f"[yellow]Not carried over[/] ({len(result.skipped)}):")
        for skipped in result.skipped:
            err_console.print(
                f"  [yellow]-[/] {escape(skipped.path)}: {escape(skipped.reason)}", soft_wrap=True
            )
    if problems:
        err_console.print(f"[bold red]{escape(where)} fails check-config:[/]")
        for problem in problems:
            err_console.print(f"  [red]✗[/] {escape(problem.describe())}", soft_wrap=True)
        return
    err_console.print(f"[green]✓[/] {escape(where)} passes check-config")
