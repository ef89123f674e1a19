"""The config diff behind a reload: what is unchanged, applied live, rebuilt or restart-only."""

from __future__ import annotations

import dataclasses

from rwconsole.config import schema
from rwconsole.config.secrets import Secret
from rwconsole.reload import diff_configs, effective


def endpoint(
    url: str = "http://127.0.0.1:1/api/v1/write", **options: object
) -> schema.EndpointConfig:
    return schema.EndpointConfig(url=url, **options)  # type: ignore[arg-type]


def job(name: str, *targets: str, **options: object) -> schema.ScrapeConfig:
    return schema.ScrapeConfig(job_name=name, targets=list(targets), **options)  # type: ignore[arg-type]


def test_identical_configs_change_nothing() -> None:
    config = schema.Config(
        endpoint=[endpoint(name="a"), endpoint("http://127.0.0.1:2/w")],
        scrape=[job("node", "127.0.0.1:9100")],
        synthetic=schema.SyntheticConfig(),
    )
    diff = diff_configs(config, dataclasses.replace(config))
    assert diff.empty
    assert diff.describe() == []
    assert diff.endpoints_unchanged == ("a", config.endpoint[1].queue_name())


def test_endpoint_changes_are_sorted_by_how_they_apply() -> None:
    old = schema.Config(
        endpoint=[
            endpoint(name="tuned"),
            endpoint(name="auth"),
            endpoint(name="relabel"),
            endpoint(name="moved"),
            endpoint(name="meta"),
            endpoint(name="gone"),
            endpoint(name="same"),
        ]
    )
    new = schema.Config(
        endpoint=[
            endpoint(name="tuned", queue_config=schema.QueueConfig(max_shards=7)),
            endpoint(name="auth", bearer_token=Secret("t0ken")),
            endpoint(
                name="relabel",
                write_relabel_config=[schema.RelabelConfig(action="drop", regex="x.*")],
            ),
            endpoint("http://127.0.0.1:3/w", name="moved"),
            endpoint(name="meta", metadata_config=schema.MetadataConfig(send=False)),
            endpoint(name="same", backfill=True),  # read by new endpoints only
            endpoint(name="new"),
        ]
    )
    diff = diff_configs(old, new)
    assert diff.endpoints_added == ("new",)
    assert diff.endpoints_removed == ("gone",)
    assert diff.endpoints_unchanged == ("same",)
    changes = {c.name: c for c in diff.endpoints_changed}
    assert set(changes) == {"tuned", "auth", "relabel", "moved", "meta"}
    tuned, auth, relabel, moved = (changes[n] for n in ("tuned", "auth", "relabel", "moved"))
    assert tuned.retune and not (tuned.client or tuned.labelling or tuned.restart)
    assert auth.client and not (auth.retune or auth.labelling or auth.restart)
    assert relabel.labelling and not (relabel.client or relabel.retune or relabel.restart)
    assert moved.restart
    assert changes["meta"].restart  # anything not taken in place restarts that endpoint
    assert "endpoint tuned: queue_config changed (queue_config applied live)" in diff.describe()
    assert not diff.restart_needed


def test_a_changed_secret_is_a_change() -> None:
    old = schema.Config(endpoint=[endpoint(name="a", bearer_token=Secret("one"))])
    new = schema.Config(endpoint=[endpoint(name="a", bearer_token=Secret("two"))])
    (change,) = diff_configs(old, new).endpoints_changed
    assert change.fields == {"bearer_token"} and change.client
    assert "two" not in " ".join(diff_configs(old, new).describe())


def test_an_unnamed_endpoint_with_another_url_is_another_endpoint() -> None:
    old = schema.Config(endpoint=[endpoint("http://127.0.0.1:1/w")])
    new = schema.Config(endpoint=[endpoint("http://127.0.0.1:2/w")])
    diff = diff_configs(old, new)
    assert diff.endpoints_added == (new.endpoint[0].queue_name(),)
    assert diff.endpoints_removed == (old.endpoint[0].queue_name(),)


def test_scrape_targets_added_and_removed_alone() -> None:
    old = schema.Config(scrape=[job("a", "h:1", "h:2"), job("b", "h:3")])
    new = schema.Config(scrape=[job("a", "h:1", "h:4"), job("c", "h:5")])
    diff = diff_configs(old, new)
    assert diff.targets_added == (("a", "h:4"), ("c", "h:5"))
    assert diff.targets_removed == (("a", "h:2"), ("b", "h:3"))
    assert diff.scrape_jobs_changed == ("b", "c")  # job a has only other targets
    retimed = schema.Config(scrape=[job("a", "h:1", "h:2", scrape_interval=5.0), job("b", "h:3")])
    assert diff_configs(old, retimed).scrape_jobs_changed == ("a",)


def test_sources_and_external_labels() -> None:
    old = schema.Config(
        receiver=schema.ReceiverConfig(), synthetic=schema.SyntheticConfig(series=10)
    )
    retuned = dataclasses.replace(old, synthetic=schema.SyntheticConfig(series=20, interval=1.0))
    assert diff_configs(old, retuned).synthetic == "retuned"
    relabelled = dataclasses.replace(old, synthetic=schema.SyntheticConfig(labels={"a": "b"}))
    assert diff_configs(old, relabelled).synthetic == "restarted"
    assert diff_configs(old, dataclasses.replace(old, synthetic=None)).synthetic == "removed"
    assert diff_configs(schema.Config(), old).synthetic == "added"
    moved = dataclasses.replace(old, receiver=schema.ReceiverConfig(listen_address="127.0.0.1:1"))
    assert diff_configs(old, moved).receiver
    labelled = dataclasses.replace(old, external_labels={"cluster": "x"})
    assert diff_configs(old, labelled).external_labels


def test_restart_only_keys_are_reported_and_kept_as_running() -> None:
    old = schema.Config()
    new = schema.Config(
        storage=schema.StorageConfig(path="elsewhere"),
        http=schema.HTTPServerConfig(listen_address="127.0.0.1:1", enable_lifecycle=True),
        wal=schema.WALConfig(segment_size=65536, truncate_frequency=60.0),
    )
    diff = diff_configs(old, new)
    assert diff.restart_needed == ("storage.path", "http.listen_address", "wal.segment_size")
    assert diff.lifecycle and diff.wal == ("truncate_frequency",)
    running = effective(old, new)
    assert running.storage == old.storage
    assert running.http.listen_address == old.http.listen_address
    assert running.http.enable_lifecycle
    assert running.wal.segment_size == old.wal.segment_size
    assert running.wal.truncate_frequency == 60.0
    assert not diff_configs(running, new).describe()
