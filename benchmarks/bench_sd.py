"""File service discovery at scale: CPU time of one refresh of N file_sd targets.

    python benchmarks/bench_sd.py [--targets 10000] [--files 10] [--group 10]
        [--format json|yaml] [--no-rules] [--repeat 5]

Writes ``--targets`` targets into ``--files`` file_sd files (JSON or YAML,
groups of ``--group`` targets with three labels each) and measures, in CPU
seconds of this process (``time.process_time``):

- the pieces, each the best of ``--repeat``: ``FileDiscoverer.refresh()``
  (globbing, reading and parsing every file) and ``build_targets`` (the job's
  defaults, ``relabel_configs`` and the URL of every target), once from
  nothing and once given its previous result, as a running job does;
- the real path end to end: a ``ScrapeManager`` running the job, its
  ``DiscoveryManager`` (throttle 0) and ``FileDiscoverer`` watching the files.
  Measured from the moment the files have been rewritten to the moment the
  manager has made its scrape loops match the delivered groups: the first refresh
  (every loop started), a refresh with the same targets (every loop kept,
  what each ``refresh_interval`` costs) and one where 1 % of the targets
  moved. The span includes up to one ``watch_interval`` (1 s) of the watcher
  sleeping, which costs no CPU. After the first refresh the benchmark collects
  and freezes the surviving objects, as the engine's GC loop does once a
  minute, so a full collection walking the 10,000 loops does not land at
  random in one of the measured refreshes.

The relabel rules (unless ``--no-rules``) are of the kinds a fleet config
uses: a keep on a discovered label, a hashmod of ``__address__`` kept by
shard (modulus 1, so every target is kept), an address rewrite to a
``host`` label, and a labelmap. The targets are addresses on 127.0.0.0/8 at
the closed port 9 and the job scrapes every hour, so the loops started do
next to nothing while the refreshes are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from bench_parse import CountingAppender

from rwconsole.config import schema
from rwconsole.config.load import parse_config
from rwconsole.relabel import compile_rules
from rwconsole.sources.discovery.common import TargetGroup
from rwconsole.sources.discovery.file import FileDiscoverer
from rwconsole.sources.scrape import ScrapeManager
from rwconsole.sources.targets import build_targets

RULES = """
[[scrape.relabel_configs]]
source_labels = ["env"]
regex = "prod|staging"
action = "keep"

[[scrape.relabel_configs]]
source_labels = ["__address__"]
modulus = 1
target_label = "__tmp_shard"
action = "hashmod"

[[scrape.relabel_configs]]
source_labels = ["__tmp_shard"]
regex = "0"
action = "keep"

[[scrape.relabel_configs]]
source_labels = ["__address__"]
regex = "([^:]+):\\\\d+"
target_label = "host"

[[scrape.relabel_configs]]
regex = "(team|zone)"
replacement = "owner_$1"
action = "labelmap"
"""

SETTLE_TIMEOUT = 120.0


def address(index: int, port: int = 9) -> str:
    return f"127.{index // 62500 % 250 + 1}.{index // 250 % 250}.{index % 250 + 1}:{port}"


def write_files(
    directory: Path, targets: int, files: int, group: int, fmt: str, moved: int = 0
) -> None:
    """``targets`` targets in ``files`` files of groups of ``group``; ``moved`` get other ports."""
    per_file = -(-targets // files)
    index = 0
    for f in range(files):
        groups: list[dict[str, Any]] = []
        while index < min(targets, (f + 1) * per_file):
            count = min(group, targets - index, (f + 1) * per_file - index)
            addrs = [address(index + i, 10 if i < moved else 9) for i in range(count)]
            labels = {"env": "prod", "team": f"team-{index // 500}", "zone": f"z{index % 3}"}
            groups.append({"targets": addrs, "labels": labels})
            index += count
            moved = max(0, moved - count)
        path = directory / f"targets-{f:03d}.{fmt}"
        tmp = path.with_suffix(".tmp")
        if fmt == "json":
            tmp.write_text(json.dumps(groups, indent=1))
        else:
            tmp.write_text(yaml.safe_dump(groups, default_flow_style=False))
        tmp.replace(path)  # as a config tool would: the watcher never sees half a file


def job_config(directory: Path, fmt: str, rules: bool) -> schema.ScrapeConfig:
    text = (
        '[[scrape]]\njob_name = "fleet"\nscrape_interval = "1h"\nscrape_timeout = "10s"\n\n'
        f"[[scrape.file_sd_configs]]\nfiles = [{json.dumps(str(directory / f'*.{fmt}'))}]\n"
        + (RULES if rules else "")
    )
    return parse_config(text, "bench_sd").scrape[0]


def best_cpu(repeat: int, work: Any) -> tuple[float, Any]:
    """The least CPU seconds of ``repeat`` calls of ``work()`` and its last result."""
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.process_time()
        result = work()
        times.append(time.process_time() - t0)
    return min(times), result


class _TimedScrapeManager(ScrapeManager):
    """A ScrapeManager that reports when it has applied a delivery of discovered groups."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

    async def _apply_groups(self, job_name: str, groups: Sequence[TargetGroup]) -> None:
        await super()._apply_groups(job_name, groups)
        if groups:  # the static part of ``apply`` delivers nothing for a file_sd job
            self.applied.put_nowait((time.process_time(), sum(len(g.targets) for g in groups)))


async def _end_to_end(
    config: schema.ScrapeConfig, directory: Path, args: argparse.Namespace
) -> list[tuple[str, float, float, int]]:
    """(refresh, CPU s, wall s, targets running) for the first, a same-targets and a moved one."""
    manager = _TimedScrapeManager(CountingAppender(), discovery_throttle=0.0)
    rows = []
    try:
        cpu0, wall0 = time.process_time(), time.monotonic()
        await manager.apply([config])
        rows.append(await _applied("first (every loop started)", manager, cpu0, wall0))
        gc.collect()
        gc.freeze()
        for name, moved in (
            ("same targets (files rewritten)", 0),
            (f"{args.targets // 100} targets moved", args.targets // 100),
        ):
            await asyncio.sleep(1.5)  # a new mtime, and the watcher's last poll settled
            # Writing is the benchmark's part (PyYAML's emitter takes about 0.5 s): the
            # watcher cannot run before this coroutine yields, so the span starts after it.
            write_files(directory, args.targets, args.files, args.group, args.format, moved)
            cpu0, wall0 = time.process_time(), time.monotonic()
            rows.append(await _applied(name, manager, cpu0, wall0))
    finally:
        await manager.stop()
        gc.unfreeze()
    return rows


async def _applied(
    name: str, manager: _TimedScrapeManager, cpu0: float, wall0: float
) -> tuple[str, float, float, int]:
    cpu1, count = await asyncio.wait_for(manager.applied.get(), SETTLE_TIMEOUT)
    running = len(manager.targets())
    return name, cpu1 - cpu0, time.monotonic() - wall0, running if count else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=10, help="file_sd files to spread them over")
    parser.add_argument("--group", type=int, default=10, help="targets per group")
    parser.add_argument("--format", choices=("json", "yaml"), default="json")
    parser.add_argument("--no-rules", action="store_true", help="no relabel_configs")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if min(args.targets, args.files, args.group, args.repeat) < 1:
        parser.error("--targets, --files, --group and --repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bench-sd-"))
    try:
        write_files(directory, args.targets, args.files, args.group, args.format)
        config = job_config(directory, args.format, not args.no_rules)
        rules = compile_rules(config.relabel_configs)
        size = sum(p.stat().st_size for p in directory.iterdir())
        print(
            f"{args.targets:,} targets in {args.files} {args.format} files "
            f"({size / 2**20:.1f} MiB, groups of {args.group}), "
            f"{len(rules)} relabel_configs rules, python {sys.version.split()[0]}"
        )
        discoverer = FileDiscoverer([str(directory / f"*.{args.format}")], 300.0)
        read_cpu, groups = best_cpu(args.repeat, lambda: asyncio.run(discoverer.refresh()))
        build_cpu, made = best_cpu(args.repeat, lambda: build_targets(config, groups, rules))
        # A tree from before build_targets took its previous result (run with another
        # checkout on PYTHONPATH to compare) has no ``made``.
        previous = getattr(made, "made", None)
        again_cpu = math.nan
        if previous is not None:
            again_cpu, _ = best_cpu(
                args.repeat, lambda: build_targets(config, groups, rules, previous)
            )
        print(f"\npieces, best of {args.repeat} (CPU s):")
        print(f"  FileDiscoverer.refresh   {read_cpu:7.3f}   {len(groups):,} groups")
        print(
            f"  build_targets            {build_cpu:7.3f}   "
            f"{len(made.active):,} active, {len(made.dropped):,} dropped"
        )
        print(f"  build_targets again      {again_cpu:7.3f}   given its previous result")
        print("\nend to end through ScrapeManager + DiscoveryManager + FileDiscoverer:")
        print(f"  {'refresh':<34} {'CPU s':>7} {'wall s':>7} {'targets':>8}")
        rows = asyncio.run(_end_to_end(config, directory, args))
        for name, cpu, wall, running in rows:
            print(f"  {name:<34} {cpu:7.3f} {wall:7.2f} {running:>8,}")
        worst = max(cpu for _name, cpu, _wall, _running in rows[1:])
        print(f"\nworst refresh after the first: {worst:.3f} CPU s")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
