"""file_sd: JSON and YAML files, globs, watching, refresh, broken files, CPU cost."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from rwconsole.sources.discovery.common import TargetGroup
from rwconsole.sources.discovery.file import FileDiscoverer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_json(path: Path, groups: list[dict[str, object]]) -> None:
    path.write_text(json.dumps(groups))
    # Each write moves the mtime forward, so a rewrite within one clock tick is seen too.
    stamp = time.time_ns() + (getattr(write_json, "tick", 0) + 1) * 1_000_000
    write_json.tick = getattr(write_json, "tick", 0) + 1  # type: ignore[attr-defined]
    os.utime(path, ns=(stamp, stamp))


async def test_json_and_yaml_files_from_globs(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", [{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "p"}}])
    (tmp_path / "b.yml").write_text(
        "- targets: ['h3:80']\n- targets: ['h4:80']\n  labels: {x: y}\n"
    )
    (tmp_path / "ignored.txt").write_text("[]")
    discoverer = FileDiscoverer([str(tmp_path / "*.json"), str(tmp_path / "*.yml")], 300)
    groups = await discoverer.refresh()
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.yml")
    assert [g.source for g in groups] == [f"{a}:0", f"{b}:0", f"{b}:1"]
    assert groups[0].targets == [{"__address__": "h1:9100"}, {"__address__": "h2:9100"}]
    assert groups[0].labels == {"env": "p", "__meta_filepath": a}
    assert groups[2].labels == {"x": "y", "__meta_filepath": b}
    assert discoverer.error == ""


async def test_broken_file_keeps_last_good_targets_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_json(path, [{"targets": ["h1:1"]}])
    other = tmp_path / "u.json"
    write_json(other, [{"targets": ["h2:1"]}])
    discoverer = FileDiscoverer([str(tmp_path / "*.json")], 300)
    assert len(await discoverer.refresh()) == 2
    path.write_text('[{"targets": ["h1:1",]}]')
    groups = await discoverer.refresh()
    assert [t["__address__"] for g in groups for t in g.targets] == ["h1:1", "h2:1"]
    assert discoverer.error.startswith(f"{path}: line 1, column ")
    path.write_text('[{"targets": "h1:1"}]')
    await discoverer.refresh()
    assert discoverer.error == f"{path}: group 0: targets must be a list of strings"
    yaml_path = tmp_path / "v.yaml"
    yaml_path.write_text("- targets: [a\n")
    broken_yaml = FileDiscoverer([str(yaml_path)], 300)
    assert await broken_yaml.refresh() == []
    assert broken_yaml.error.startswith(f"{yaml_path}: line 2, column 1: ")


async def test_watch_reports_changes_and_removed_files(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_json(path, [{"targets": ["h1:1"]}])
    discoverer = FileDiscoverer([str(tmp_path / "*.json")], 3600, watch_interval=0.02)
    seen: list[list[TargetGroup]] = []
    changed = asyncio.Event()

    def updates(groups: list[TargetGroup]) -> None:
        seen.append(groups)
        changed.set()

    task = asyncio.create_task(discoverer.run(updates))
    try:
        await asyncio.wait_for(changed.wait(), 10)
        assert seen[-1][0].targets == [{"__address__": "h1:1"}]
        changed.clear()
        write_json(path, [{"targets": ["h2:1"]}, {"targets": ["h3:1"]}])
        await asyncio.wait_for(changed.wait(), 10)
        assert [g.targets for g in seen[-1]] == [
            [{"__address__": "h2:1"}],
            [{"__address__": "h3:1"}],
        ]
        changed.clear()
        path.unlink()
        await asyncio.wait_for(changed.wait(), 10)
        # The file's two sources are reported gone (empty groups).
        assert [(g.source, g.targets) for g in seen[-1]] == [(f"{path}:0", []), (f"{path}:1", [])]
    finally:
        discoverer.stop()
        await asyncio.wait_for(task, 10)


async def test_refresh_interval_rereads_without_changes(tmp_path: Path) -> None:
    write_json(tmp_path / "t.json", [{"targets": ["h1:1"]}])
    discoverer = FileDiscoverer([str(tmp_path / "t.json")], 0.01, watch_interval=10)
    count = 0
    enough = asyncio.Event()

    def updates(groups: list[TargetGroup]) -> None:
        nonlocal count
        count += 1
        if count >= 3:
            enough.set()

    task = asyncio.create_task(discoverer.run(updates))
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        discoverer.stop()
        await asyncio.wait_for(task, 10)


async def test_ten_thousand_targets_refresh_in_under_a_second_of_cpu(tmp_path: Path) -> None:
    groups = [
        {"targets": [f"10.0.{i}.{j}:9100" for j in range(100)], "labels": {"rack": f"r{i}"}}
        for i in range(100)
    ]
    write_json(tmp_path / "big.json", groups)
    discoverer = FileDiscoverer([str(tmp_path / "*.json")], 300)
    start = time.process_time()
    found = await discoverer.refresh()
    cpu = time.process_time() - start
    assert sum(len(g.targets) for g in found) == 10_000
    assert cpu < 1.0, f"refresh of 10,000 targets took {cpu:.3f}s of CPU"
