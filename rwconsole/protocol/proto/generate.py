"""Regenerate the reference protobuf modules from the ``.proto`` files here.

Run ``python -m rwconsole.protocol.proto.generate`` after editing a ``.proto``
file; it writes ``remote_v1_pb2.py`` and ``remote_v2_pb2.py`` next to this file
with the protoc bundled in ``grpcio-tools`` (a development-only dependency).
The generated modules are committed, so running the project never needs protoc.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_FILES = ("remote_v1.proto", "remote_v2.proto")


def generate(directory: Path | None = None) -> None:
    """Compile every file of ``PROTO_FILES`` into ``<name>_pb2.py``."""
    from grpc_tools import protoc

    here = directory or Path(__file__).resolve().parent
    # The import root is the directory holding the ``rwconsole`` package, so the
    # files register in the protobuf descriptor pool under their package path
    # (e.g. ``rwconsole/protocol/proto/remote_v1.proto``) and cannot clash with
    # another project's ``remote.proto``.
    root = here.parents[2]
    for name in PROTO_FILES:
        args = ["protoc", f"--proto_path={root}", f"--python_out={root}", str(here / name)]
        status = protoc.main(args)
        if status != 0:
            raise SystemExit(f"protoc failed on {name} (exit status {status})")


def main() -> int:
    generate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
