"""Target labels from discovered groups and ``relabel_configs`` (Prometheus 2.x semantics)."""

from __future__ import annotations

from typing import Any

from rwconsole.config import schema
from rwconsole.relabel import compile_rules, hashmod
from rwconsole.sources.discovery.common import TargetGroup
from rwconsole.sources.targets import build_targets


def job(**overrides: Any) -> schema.ScrapeConfig:
    base: dict[str, Any] = {"job_name": "node", "scrape_interval": 15.0, "scrape_timeout": 10.0}
    base.update(overrides)
    return schema.ScrapeConfig(**base)


def rules(*configs: dict[str, Any]) -> list[Any]:
    return compile_rules([schema.RelabelConfig(**c) for c in configs])


GROUP = TargetGroup(
    "file.json:0",
    [{"__address__": "10.0.0.1:9100"}, {"__address__": "10.0.0.2", "rack": "r2"}],
    {"__meta_dc": "east", "rack": "r1"},
)


def test_defaults_without_rules_become_job_instance_and_url() -> None:
    made = build_targets(job(params={"module": ["a", "b"]}), [GROUP], [])
    first, second = made.active
    assert dict(first.discovered) == {
        "__address__": "10.0.0.1:9100",
        "__meta_dc": "east",
        "__metrics_path__": "/metrics",
        "__param_module": "a",
        "__scheme__": "http",
        "__scrape_interval__": "15s",
        "__scrape_timeout__": "10s",
        "job": "node",
        "rack": "r1",
    }
    assert dict(first.series_labels) == {"instance": "10.0.0.1:9100", "job": "node", "rack": "r1"}
    # a missing port is the scheme's; the target's own label beats the group's
    assert dict(second.series_labels) == {"instance": "10.0.0.2:80", "job": "node", "rack": "r2"}
    assert first.full_url == "http://10.0.0.1:9100/metrics?module=a&module=b"
    assert (first.interval, first.timeout) == (15.0, 10.0)
    assert "__meta_dc" not in dict(first.labels)


def test_relabel_rewrites_url_params_schedule_and_drops_with_the_rule_named() -> None:
    made = build_targets(
        job(),
        [GROUP],
        rules(
            {"source_labels": ["rack"], "regex": "r2", "action": "drop"},
            {"source_labels": ["__meta_dc"], "target_label": "dc"},
            {"target_label": "__metrics_path__", "replacement": "/probe"},
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": "blackbox:9115"},
            {"target_label": "__scrape_interval__", "replacement": "30s"},
            {"regex": "__meta_(.+)", "replacement": "meta_$1", "action": "labelmap"},
        ),
    )
    (active,) = made.active
    assert active.full_url == "http://blackbox:9115/probe?target=10.0.0.1%3A9100"
    assert active.interval == 30.0
    assert dict(active.series_labels) == {
        "dc": "east",
        "instance": "blackbox:9115",
        "job": "node",
        "meta_dc": "east",
        "rack": "r1",
    }
    (dropped,) = made.dropped
    assert dict(dropped.discovered)["__address__"] == "10.0.0.2"
    assert dropped.reason == "relabel_configs[0] (drop)"


def test_instance_set_by_relabelling_is_kept() -> None:
    made = build_targets(
        job(), [GROUP], rules({"target_label": "instance", "replacement": "fixed"})
    )
    assert {t.instance for t in made.active} == {"fixed"}
    assert len(made.active) == 2  # still two targets: their addresses differ


def test_broken_targets_are_dropped_with_the_reason() -> None:
    made = build_targets(
        job(),
        [GROUP],
        rules(
            {"source_labels": ["rack"], "regex": "r1", "target_label": "__address__",
             "replacement": ""},
            {"source_labels": ["rack"], "regex": "r2", "target_label": "__scrape_timeout__",
             "replacement": "1m"},
        ),
    )  # fmt: skip
    assert made.active == []
    reasons = sorted(d.reason for d in made.dropped)
    assert reasons[0] == "no __address__ label after relabelling"
    assert reasons[1].startswith("scrape timeout cannot be greater than scrape interval")


def test_hashmod_keep_spreads_targets_over_shards_exactly_once() -> None:
    addresses = [f"10.0.{i // 250}.{i % 250}:9100" for i in range(200)]
    group = TargetGroup("g", [{"__address__": a} for a in addresses])
    seen: list[str] = []
    for shard in range(3):
        made = build_targets(
            job(),
            [group],
            rules(
                {"source_labels": ["__address__"], "modulus": 3,
                 "target_label": "__tmp_hash", "action": "hashmod"},
                {"source_labels": ["__tmp_hash"], "regex": str(shard), "action": "keep"},
            ),
        )  # fmt: skip
        assert all(hashmod(t.instance, 3) == shard for t in made.active)
        assert all("__tmp_hash" not in dict(t.series_labels) for t in made.active)
        seen += [t.instance for t in made.active]
        assert 30 < len(made.active) < 110  # spread, not all in one shard
    assert sorted(seen) == sorted(addresses)


def test_duplicate_targets_are_scraped_once() -> None:
    group = TargetGroup("g", [{"__address__": "a:1"}, {"__address__": "a:1"}])
    assert len(build_targets(job(), [group, group], []).active) == 1


def test_the_sample_shard_config_splits_targets_over_its_instances() -> None:
    from pathlib import Path

    from rwconsole.config.load import parse_config

    template = (Path(__file__).parents[2] / "sample-configs" / "scrape-shard.toml").read_text()
    assert template.count('"0" }  # shard') == 1 and template.count('"0"  # shard') == 1
    group = TargetGroup("g", [{"__address__": f"node-{i}:9100"} for i in range(90)])
    kept: list[str] = []
    for shard in range(3):
        text = template.replace('"0" }  # shard', f'"{shard}" }}').replace(
            '"0"  # shard', f'"{shard}"'
        )
        config = parse_config(text)
        assert config.external_labels == {"shard": str(shard)}
        (scrape,) = config.scrape
        made = build_targets(scrape, [group], compile_rules(scrape.relabel_configs))
        assert {d.reason for d in made.dropped} == {"relabel_configs[1] (keep)"}
        kept += [t.instance for t in made.active]
    assert sorted(kept) == sorted(t["__address__"] for t in group.targets)


def test_targets_found_again_are_reused_and_new_ones_relabelled() -> None:
    config = job()
    shard = rules(
        {"source_labels": ["__address__"], "modulus": 2,
         "target_label": "__tmp_hash", "action": "hashmod"},
        {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
        {"source_labels": ["__address__"], "regex": "([^:]+):.*", "target_label": "host"},
    )  # fmt: skip
    first_group = TargetGroup("g", [{"__address__": f"10.0.0.{i}:9100"} for i in range(40)])
    first = build_targets(config, [first_group], shard)
    assert first.active and first.dropped
    assert first.identities == [t.identity for t in first.active]
    moved = TargetGroup("g", [*first_group.targets[:30], {"__address__": "10.9.9.9:1"}])
    again = build_targets(config, [moved], shard, first.made)
    fresh = build_targets(config, [moved], shard)
    assert again.active == fresh.active and again.dropped == fresh.dropped
    assert again.identities == fresh.identities
    kept = {t.discovered: t for t in first.active}
    reused = [t for t in again.active if t.discovered in kept]
    assert reused and all(t is kept[t.discovered] for t in reused)  # not relabelled again
    assert all(dict(t.labels)["host"] == t.instance.split(":")[0] for t in again.active)
    # only what these groups made is handed on: gone targets are forgotten
    assert set(again.made) == set(fresh.made) and len(again.made) == 31
