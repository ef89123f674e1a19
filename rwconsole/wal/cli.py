"""``rwconsole wal ...`` subcommands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("wal", help="inspect, dump, verify and repair WAL directories")
    parser.set_defaults(handler=lambda args: 1)
