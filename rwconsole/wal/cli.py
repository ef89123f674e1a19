"""``rwconsole wal ...`` subcommands: inspect, dump, verify, repair, open, replay.

Thin wrappers around ``rwconsole.wal.tools``; this module only parses
arguments and prints. ``open`` and ``replay`` run outside ``wal`` (the
console, the queue machinery): their handlers are passed in. Each command
takes a WAL directory or a data directory holding ``wal/``. Exit codes: 0
fine, 1 damage found (or the command could not finish), 2 usage error (bad
arguments, missing or unreadable directory, not a WAL).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rwconsole.datadir import DataDirLocked, check_unlocked
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_USAGE
from rwconsole.labels import escape_value, format_labels
from rwconsole.model import is_stale_nan
from rwconsole.selector import SelectorError, parse_selector
from rwconsole.wal import tools
from rwconsole.wal.segment import segment_name

PIPE_WIDTH = 200
"""Columns of text output that goes to a file or pipe."""


def register(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    open_console: Callable[[argparse.Namespace], int],
    replay: Callable[[argparse.Namespace], int],
) -> None:
    """Add ``wal ...``; ``open_console`` runs ``wal open``, ``replay`` runs ``wal replay``."""
    parser = subparsers.add_parser("wal", help="inspect, dump, verify and repair WAL directories")
    parser.set_defaults(handler=_no_subcommand, wal_parser=parser)
    sub = parser.add_subparsers(dest="wal_command", metavar="SUBCOMMAND")

    p = sub.add_parser("inspect", help="summarise segments, records, series and damage")
    p.add_argument("dir", metavar="DIR", help="WAL directory or data directory containing wal/")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--top", type=int, default=10, metavar="N", help="top N metric names")
    p.set_defaults(handler=_cmd_inspect)

    p = sub.add_parser("dump", help="print samples, exemplars and histograms")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--match", metavar="SELECTOR", help='series selector, e.g. up{job="node"}')
    p.add_argument("--start", metavar="MS|RFC3339", help="earliest timestamp")
    p.add_argument("--end", metavar="MS|RFC3339", help="latest timestamp")
    p.add_argument("--format", choices=("text", "json", "openmetrics"), default="text")
    p.set_defaults(handler=_cmd_dump)

    p = sub.add_parser("verify", help="check every fragment and record (exit 1 when damaged)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("repair", help="cut a damaged WAL at the first damage, keeping a backup")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--dry-run", action="store_true", help="only say what would change")
    p.add_argument("--no-backup", action="store_true", help="delete instead of moving aside")
    p.set_defaults(handler=_cmd_repair)

    p = sub.add_parser("open", help="open the WAL in the console")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(handler=open_console)

    p = sub.add_parser(
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
    p.set_defaults(handler=replay)


def _out() -> Console:
    # Piped output has no width to fit: tables would be cut at 80 columns.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(highlight=False, soft_wrap=True, width=width)


def _zone() -> str:
    return datetime.now().astimezone().strftime("UTC%z")


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _no_subcommand(args: argparse.Namespace) -> int:
    args.wal_parser.print_help()
    return EXIT_USAGE


def _resolve(path: str) -> Path | None:
    try:
        return tools.resolve_wal_dir(path)
    except (OSError, tools.NotAWalError) as exc:
        _err().print(f"[bold red]error:[/] {exc}", markup=True)
        return None


def _guard(func: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    try:
        return True, func(*args, **kwargs)
    except PermissionError as exc:
        _err().print(f"[bold red]error:[/] permission denied: {exc.filename or exc}")
    except OSError as exc:
        _err().print(f"[bold red]error:[/] {exc}")
    return False, None


# ---------------------------------------------------------------------------
# inspect


def _readable_ts(ms: int | None) -> str:
    """A millisecond timestamp as local ``2026-12-06 20:17:45.123``; raw if out of range."""
    if ms is None:
        return "-"
    try:
        stamp = datetime.fromtimestamp(ms / 1000).astimezone()
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def _fmt_ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    try:
        stamp = datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return f"{ms} ({stamp})"


def _cmd_inspect(args: argparse.Namespace) -> int:
    wal_dir = _resolve(args.dir)
    if wal_dir is None:
        return EXIT_USAGE
    if args.top < 0:
        _err().print("[bold red]error:[/] --top must be >= 0")
        return EXIT_USAGE
    ok, report = _guard(tools.inspect, wal_dir, top=args.top)
    if not ok:
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return EXIT_OK
    out = _out()
    out.print(f"[bold]WAL[/] {report.directory}")
    table = Table("segment", "size", "records", "first rec", "last rec", "min time", "max time")
    for s in report.segments:
        table.add_row(
            s.name,
            f"{s.size:,}",
            f"{s.records:,}",
            "-" if s.first_record_offset is None else str(s.first_record_offset),
            "-" if s.last_record_offset is None else str(s.last_record_offset),
            _readable_ts(s.min_time_ms),
            _readable_ts(s.max_time_ms),
        )
    out.print(table)
    if report.segments:
        out.print(f"times are local ({_zone()})")
    out.print(f"checkpoint: {report.checkpoint or 'none'}")
    records = ", ".join(f"{k}={v:,}" for k, v in sorted(report.records.items())) or "none"
    out.print(f"records: {records}")
    out.print(
        f"series: {report.series:,}  samples: {report.samples:,}  "
        f"exemplars: {report.exemplars:,}  histograms: {report.histograms:,}"
    )
    out.print(f"time range: {_fmt_ts(report.min_time_ms)} .. {_fmt_ts(report.max_time_ms)}")
    if report.top_metrics:
        top = Table("metric", "series", title="top metric names")
        for name, count in report.top_metrics:
            top.add_row(name or "(no name)", f"{count:,}")
        out.print(top)
    if report.top_label_names:
        out.print("label names: " + ", ".join(f"{n} ({c:,})" for n, c in report.top_label_names))
    if report.gaps:
        out.print("[yellow]missing segments:[/] " + ", ".join(f"{i:08d}" for i in report.gaps))
    for line in report.undecodable:
        out.print(f"[yellow]undecodable record:[/] {line}")
    if report.corruption is not None:
        out.print(f"[bold red]corruption:[/] {report.corruption.describe()}")
    else:
        out.print("corruption: none")
    return EXIT_OK


# ---------------------------------------------------------------------------
# dump


def parse_time(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    try:
        parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is neither milliseconds nor an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{flag}: {text!r} needs a time zone (e.g. Z or +02:00)")
    return int(parsed.timestamp() * 1000)


def _json_value(value: float) -> float | str:
    if math.isnan(value):
        return "stale" if is_stale_nan(value) else "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def _text_value(value: float) -> str:
    if math.isnan(value):
        bits = struct.unpack(">Q", struct.pack(">d", value))[0]
        return f"stale (0x{bits:016x})" if is_stale_nan(value) else "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _om_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _om_labels(labels: Any) -> tuple[str, str]:
    name = ""
    parts = []
    for key, val in labels:
        if key == "__name__":
            name = val
            continue
        parts.append(f'{key}="{escape_value(val)}"')
    return name, ("{" + ",".join(parts) + "}") if parts else ""


def _histogram_json(h: Any) -> dict[str, Any]:
    return {
        "schema": h.schema,
        "zero_threshold": _json_value(h.zero_threshold),
        "zero_count": _json_value(float(h.zero_count)) if h.is_float else h.zero_count,
        "count": _json_value(float(h.count)) if h.is_float else h.count,
        "sum": _json_value(h.sum),
        "positive_spans": [list(s) for s in h.positive_spans],
        "negative_spans": [list(s) for s in h.negative_spans],
        "positive_buckets": [
            _json_value(float(b)) if h.is_float else b for b in h.positive_buckets
        ],
        "negative_buckets": [
            _json_value(float(b)) if h.is_float else b for b in h.negative_buckets
        ],
        "reset_hint": h.reset_hint.name.lower(),
        "float": h.is_float,
        "custom_values": [_json_value(v) for v in h.custom_values],
    }


def _cmd_dump(args: argparse.Namespace) -> int:
    try:
        selector = parse_selector(args.match) if args.match else None
        start = parse_time(args.start, "--start")
        end = parse_time(args.end, "--end")
    except (SelectorError, ValueError) as exc:
        _err().print(f"[bold red]error:[/] {exc}", markup=True)
        return EXIT_USAGE
    wal_dir = _resolve(args.dir)
    if wal_dir is None:
        return EXIT_USAGE
    problems: list[str] = []
    write = sys.stdout.write
    try:
        for item in tools.iter_dump(wal_dir, selector, start, end, problems=problems):
            write(_format_item(item, args.format))
        if args.format == "openmetrics":
            write("# EOF\n")
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        _err().print(f"[bold red]error:[/] {exc}")
        return EXIT_USAGE
    for problem in problems:
        _err().print(f"[yellow]warning:[/] {problem}")
    return EXIT_OK


def _format_item(item: tools.DumpItem, fmt: str) -> str:
    if fmt == "json":
        obj: dict[str, Any] = {"labels": dict(item.labels), "timestamp": item.timestamp}
        if item.kind == "sample":
            obj["value"] = _json_value(item.value)
        elif item.kind == "exemplar":
            obj = {
                "type": "exemplar",
                **obj,
                "value": _json_value(item.value),
                "exemplar_labels": dict(item.exemplar_labels),
            }
        else:
            obj = {"type": "histogram", **obj, "histogram": _histogram_json(item.histogram)}
        if item.start_timestamp:
            obj["start_timestamp"] = item.start_timestamp
        return json.dumps(obj) + "\n"
    if fmt == "openmetrics":
        name, labels = _om_labels(item.labels)
        seconds = f"{item.timestamp / 1000:.3f}"
        if item.kind == "sample":
            return f"{name}{labels} {_om_value(item.value)} {seconds}\n"
        if item.kind == "exemplar":
            _, ex_labels = _om_labels(item.exemplar_labels)
            return (
                f"# exemplar {name}{labels} {ex_labels or '{}'} {_om_value(item.value)} {seconds}\n"
            )
        h = item.histogram
        assert h is not None
        return (
            f"# histogram {name}{labels} count={h.count} sum={_om_value(h.sum)} "
            f"schema={h.schema} {seconds}\n"
        )
    labels = format_labels(item.labels)
    start = f" start={item.start_timestamp}" if item.start_timestamp else ""
    if item.kind == "sample":
        return f"{labels} {_text_value(item.value)} {item.timestamp}{start}\n"
    if item.kind == "exemplar":
        return (
            f"exemplar {labels} {format_labels(item.exemplar_labels)} "
            f"{_text_value(item.value)} {item.timestamp}\n"
        )
    h = item.histogram
    assert h is not None
    return (
        f"histogram {labels} count={h.count} sum={h.sum} schema={h.schema} "
        f"{item.timestamp}{start}\n"
    )


# ---------------------------------------------------------------------------
# verify / repair / open


def _cmd_verify(args: argparse.Namespace) -> int:
    wal_dir = _resolve(args.dir)
    if wal_dir is None:
        return EXIT_USAGE
    ok, report = _guard(tools.verify, wal_dir)
    if not ok:
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "directory": report.directory,
                    "ok": report.ok,
                    "segments": report.segments,
                    "records": report.records,
                    "bytes": report.bytes_read,
                    "problems": [
                        {
                            "kind": p.kind,
                            "segment": p.segment,
                            "offset": p.offset,
                            "message": p.message,
                            "records_lost": p.records_lost,
                            "samples_lost": p.samples_lost,
                        }
                        for p in report.problems
                    ],
                    "notes": report.notes,
                },
                indent=2,
            )
            + "\n"
        )
        return EXIT_OK if report.ok else EXIT_BAD
    out = _out()
    out.print(
        f"verified {report.segments} segment(s), {report.records:,} records, "
        f"{report.bytes_read:,} bytes in {report.seconds:.2f}s ({report.mb_per_second:.0f} MB/s)"
    )
    for note in report.notes:
        out.print(f"note: {note}")
    if report.ok:
        out.print("[green]OK[/]: no damage found")
        return EXIT_OK
    for p in report.problems:
        where = p.segment if p.offset is None else f"{p.segment} offset {p.offset}"
        out.print(f"[bold red]{p.kind}[/] in {where}: {p.message}")
    return EXIT_BAD


def _cmd_repair(args: argparse.Namespace) -> int:
    wal_dir = _resolve(args.dir)
    if wal_dir is None:
        return EXIT_USAGE
    if not args.dry_run:
        try:
            check_unlocked(wal_dir.parent)
        except DataDirLocked as err:
            _err().print(f"[bold red]error:[/] {escape(str(err))}; stop it before repairing")
            return EXIT_BAD
        except OSError as err:  # an unreadable lock: whether a process holds it is unknown
            _err().print(
                f"[bold red]error:[/] cannot check the lock of {escape(str(wal_dir.parent))}: "
                f"{escape(str(err))}"
            )
            return EXIT_BAD
    backup = not args.no_backup
    ok, report = _guard(tools.repair, wal_dir, dry_run=args.dry_run, backup=backup)
    if not ok:
        return EXIT_BAD
    out = _out()
    verb = "would" if report.dry_run else "did"
    if not report.gaps_filled and not report.checkpoint_gaps_filled and report.corruption is None:
        out.print("[green]OK[/]: nothing to repair")
        return EXIT_OK
    if report.gaps_filled:
        names = ", ".join(segment_name(i) for i in report.gaps_filled)
        out.print(f"{verb} create empty segment(s) for missing {names} (nothing lost)")
    if report.checkpoint_gaps_filled:
        names = ", ".join(segment_name(i) for i in report.checkpoint_gaps_filled)
        out.print(f"{verb} create empty checkpoint segment(s) for missing {names} (nothing lost)")
    c = report.corruption
    if c is not None:
        out.print(f"corruption: {c.describe()}")
        kept = "keep" if report.dry_run else "kept"
        out.print(
            f"{verb} cut {c.location()} at byte offset {c.offset:,}: {kept} "
            f"{report.records_kept:,} record(s) before it, drop at least "
            f"{c.records_lost:,} record(s) ({c.samples_lost:,} samples) from there"
        )
        if report.segments_deleted:
            names = ", ".join(segment_name(i) for i in report.segments_deleted)
            out.print(f"{verb} remove later segment(s) {names}")
        if report.dry_run:
            out.print(
                "would move the removed data to "
                f"{escape(wal_dir.name)}.repair-backup-<time> next to the WAL"
                if backup
                else "would delete the removed data (--no-backup)"
            )
    if report.backup_dir:
        out.print(f"removed data kept in {report.backup_dir}")
    return EXIT_OK
