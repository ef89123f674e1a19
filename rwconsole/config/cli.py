"""``rwconsole check-config``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("check-config", help="validate a config file")
    parser.add_argument("file")
    parser.set_defaults(handler=lambda args: 1)
