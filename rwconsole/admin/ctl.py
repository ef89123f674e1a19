"""``rwconsole ctl TARGET …``: the console's commands for scripts, over the admin API.

``status``, ``queue ENDPOINT key=value …`` (``--save``), ``pause``, ``resume``,
``reload`` and ``logs [--follow]``; ``--json`` prints machine-readable output.
Queue values are checked with the console's own rules before they are sent
(and again by the engine). Exit codes: 0 done, 1 the engine refused the
command, 2 usage or invalid value, 3 the admin API cannot be reached or
refused the credentials (``rwconsole.exitcodes``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rwconsole.admin.client import AdminClient, AdminError, AdminTarget, parse_target
from rwconsole.exitcodes import EXIT_BAD, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from rwconsole.snapshot import EndpointSnapshot, Snapshot, from_dict, to_plain

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Credentials for an http(s) admin URL (shared by ``attach`` and ``ctl``)."""
    parser.add_argument("--token-file", metavar="FILE", default="", help="bearer token file")
    parser.add_argument("--ca-file", metavar="FILE", default="", help="CA of the server's cert")
    parser.add_argument("--cert-file", metavar="FILE", default="", help="client certificate")
    parser.add_argument("--key-file", metavar="FILE", default="", help="client certificate key")


def target_from_args(text: str, args: argparse.Namespace) -> AdminTarget:
    return parse_target(
        text,
        token_file=args.token_file,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ctl = subparsers.add_parser(
        "ctl",
        help="control a running forwarder (status, queue, pause, resume, reload, logs)",
        description="Commands for a running rwconsole through its admin API. TARGET is a "
        "data directory, an admin socket or an http(s):// admin URL.",
    )
    add_target_options(ctl)
    ctl.add_argument("target", metavar="TARGET")
    actions = ctl.add_subparsers(dest="action", metavar="ACTION", required=True)
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")

    actions.add_parser("status", parents=[json_flag], help="endpoints: shards, lag, rates")
    queue = actions.add_parser(
        "queue", parents=[json_flag], help="change queue_config of an endpoint, live"
    )
    queue.add_argument("endpoint", metavar="ENDPOINT")
    queue.add_argument("settings", metavar="KEY=VALUE", nargs="+")
    queue.add_argument("--save", action="store_true", help="also write the service's config")
    for name in ("pause", "resume"):
        action = actions.add_parser(name, parents=[json_flag], help=f"{name} an endpoint's queue")
        action.add_argument("endpoint", metavar="ENDPOINT")
    actions.add_parser("reload", parents=[json_flag], help="reload the service's config file")
    logs = actions.add_parser("logs", parents=[json_flag], help="the service's log lines")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    ctl.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        target = target_from_args(args.target, args)
    except ValueError as err:
        _err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_USAGE
    handlers: dict[str, Callable[[AdminClient, argparse.Namespace], Awaitable[int]]] = {
        "status": _status,
        "queue": _queue,
        "pause": _pause_resume,
        "resume": _pause_resume,
        "reload": _reload,
        "logs": _logs,
    }

    async def main() -> int:
        client = AdminClient(target)
        try:
            return await handlers[args.action](client, args)
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except AdminError as err:
        if args.json:
            print(json.dumps({"ok": False, "error": str(err), "status": err.status}))
        else:
            _err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        unreachable = err.status == 0 or err.status in (401, 403)
        return EXIT_UNREACHABLE if unreachable else EXIT_BAD


# ---- status --------------------------------------------------------------------------------


def endpoint_status(endpoint: EndpointSnapshot) -> dict[str, Any]:
    last = endpoint.history[-1] if endpoint.history else None
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "status": endpoint.status,
        "paused": endpoint.paused,
        "shards": endpoint.shards,
        "shards_desired": endpoint.shards_desired,
        "max_shards": endpoint.queue_config.get("max_shards"),
        "lag_seconds": endpoint.lag_seconds,
        "pending_samples": endpoint.pending_samples,
        "samples_in_per_second": last.samples_in_per_second if last else 0.0,
        "samples_out_per_second": last.samples_out_per_second if last else 0.0,
        "samples_total": endpoint.samples_total,
        "samples_failed": endpoint.samples_failed,
        "samples_dropped": endpoint.samples_dropped,
        "last_error": endpoint.last_error,
        "queue_config": endpoint.queue_config,
    }


async def _snapshot(client: AdminClient) -> Snapshot:
    return from_dict(await client.get("/snapshot"))


async def _status(client: AdminClient, args: argparse.Namespace) -> int:
    snapshot = await _snapshot(client)
    rows = [endpoint_status(e) for e in snapshot.endpoints]
    if args.json:
        info = await client.get("/info")
        print(
            json.dumps(
                {
                    "running": snapshot.running,
                    "pid": info.get("pid"),
                    "config_path": info.get("config_path"),
                    "wal_dir": snapshot.wal_dir,
                    "samples_in_per_second": snapshot.samples_in_per_second,
                    "endpoints": rows,
                }
            )
        )
        return EXIT_OK
    table = Table(box=None, pad_edge=False)
    for column in ("endpoint", "status", "shards", "desired", "max", "lag", "pending", "out/s"):
        table.add_column(column, justify="left" if column in ("endpoint", "status") else "right")
    for row in rows:
        table.add_row(
            row["name"],
            row["status"] + (" (paused)" if row["paused"] else ""),
            str(row["shards"]),
            f"{row['shards_desired']:.1f}",
            str(row["max_shards"]),
            f"{row['lag_seconds']:.1f}s",
            f"{row['pending_samples']:.0f}",
            f"{row['samples_out_per_second']:.0f}",
        )
    _out.print(f"in: {snapshot.samples_in_per_second:.0f} samples/s   WAL {snapshot.wal_dir}")
    _out.print(table)
    return EXIT_OK


# ---- commands --------------------------------------------------------------------------------


def parse_settings(settings: list[str], current: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` words as queue_config changes, checked as the console checks its form.

    ValueError names the key and says why.
    """
    from rwconsole.config import schema
    from rwconsole.config.validate import queue_config_problems
    from rwconsole.tui import format as fmt
    from rwconsole.tui.screens.queue_config import parse_value

    changes: dict[str, Any] = {}
    for word in settings:
        key, eq, text = word.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"{word!r}: expected KEY=VALUE")
        kind = fmt.QUEUE_KINDS.get(key)
        if kind is None:
            known = ", ".join(sorted(fmt.QUEUE_KINDS))
            raise ValueError(f"{key}: not a queue_config field (one of {known})")
        if kind == "bool":
            if text.strip().lower() not in ("true", "false"):
                raise ValueError(f"{key}: {text!r} is not true or false")
            changes[key] = text.strip().lower() == "true"
        else:
            try:
                changes[key] = parse_value(kind, text)
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None
    merged = {**current, **changes}
    known = {f.name for f in dataclasses.fields(schema.QueueConfig)}
    for problem in queue_config_problems(
        schema.QueueConfig(**{k: v for k, v in merged.items() if k in known})
    ):
        raise ValueError(f"queue_config.{problem.describe()}")
    return changes


async def _queue(client: AdminClient, args: argparse.Namespace) -> int:
    snapshot = await _snapshot(client)
    endpoint = snapshot.endpoint(args.endpoint)
    if endpoint is None:
        names = ", ".join(e.name for e in snapshot.endpoints) or "none"
        raise AdminError(f"no endpoint named {args.endpoint!r} (endpoints: {names})", 404)
    try:
        changes = parse_settings(args.settings, dict(endpoint.queue_config))
    except ValueError as err:
        if args.json:
            print(json.dumps({"ok": False, "error": str(err)}))
        else:
            _err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_USAGE
    result = await client.command(
        "apply_queue_config", endpoint=args.endpoint, changes=changes, save=args.save
    )
    _done(
        args,
        f"queue_config of {args.endpoint} applied" + (" and saved" if args.save else ""),
        result,
    )
    return EXIT_OK


async def _pause_resume(client: AdminClient, args: argparse.Namespace) -> int:
    await client.command(args.action, endpoint=args.endpoint)
    _done(args, f"{args.endpoint}: {args.action}d", None)
    return EXIT_OK


async def _reload(client: AdminClient, args: argparse.Namespace) -> int:
    result = await client.command("reload")
    _done(args, "config reloaded", result)
    return EXIT_OK


def _done(args: argparse.Namespace, text: str, result: Any) -> None:
    if args.json:
        print(json.dumps({"ok": True, "result": to_plain(result)}))
    else:
        _out.print(text)


async def _logs(client: AdminClient, args: argparse.Namespace) -> int:
    params = {"follow": "1"} if args.follow else {}
    async for entry in client.lines("/logs", **params):
        if args.json:
            print(json.dumps(entry), flush=True)
            continue
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry.get("time", 0))))
        where = f" [{entry['endpoint']}]" if entry.get("endpoint") else ""
        print(f"{stamp} {entry.get('level', '')}{where} {entry.get('message', '')}", flush=True)
    return EXIT_OK
