"""OpenLineage events of a domain run, through the real Airflow OpenLineage provider and its file transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_core.pipeline import RunContext, refresh_targets
from synth_core.publish import publish, quarantine
from synth_core.store import LocalStore
from tests.conftest import domain_config, write_generated_run

pytestmark = pytest.mark.unit


def _forget_provider_settings() -> None:
    """The provider caches its settings per process; tests change them."""
    from airflow.providers.openlineage import conf

    for value in vars(conf).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "synth-test")
    _forget_provider_settings()
    yield path
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
    _forget_provider_settings()


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_published_run_starts_with_its_inputs_and_completes_with_gate_and_soft_prompt_facets(
        tmp_path: Path, lineage_file: Path) -> None:
    config = domain_config(tmp_path)
    store = LocalStore(tmp_path / "artifacts")
    refresh_targets(config, RunContext(run_id="run1", ds="2025-01-31"), store)
    write_generated_run(config, "run1", store)  # the batch and the gate report the later steps leave
    published = publish(config, "run1", store, "2025-01-31")

    start, complete = _events(lineage_file)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"] == complete["job"] | {"facets": start["job"]["facets"]}
    assert (start["job"]["namespace"], start["job"]["name"]) == ("synth-test", "synth.arith")
    source, snapshot = start["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(tmp_path / "targets.jsonl"))
    assert snapshot["name"] == str(tmp_path / "artifacts/arith/run1/refresh/target_snapshot.parquet")
    snapshot_hash = store.get_json("arith/run1/refresh/lineage.json")["snapshot_hash"]
    assert snapshot["facets"]["version"]["datasetVersion"] == snapshot_hash
    assert complete["inputs"] == start["inputs"]

    (output,) = complete["outputs"]
    assert f"file://{output['name']}" == published["uri"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 30
    facets = complete["run"]["facets"]
    assert facets["synth_gate"]["decision"] == "pass"
    assert facets["synth_gate"]["metrics"]["mauve"] == 0.81
    assert facets["synth_gate"]["_schemaURL"].endswith("#/$defs/GateRunFacet")
    assert facets["synth_softPrompt"]["checkpointHash"] == "ckpt-abc"
    assert facets["synth_softPrompt"]["snapshotHash"] == snapshot_hash
    ours = [facets["synth_gate"], facets["synth_softPrompt"], complete["job"]["facets"]["jobType"],
            snapshot["facets"]["version"], output["outputFacets"]["outputStatistics"]]
    assert {facet["_producer"] for facet in ours} == {complete["producer"]} == {"urn:synth_core"}


def test_a_quarantined_run_completes_with_the_quarantine_partition_and_the_failing_decision(
        tmp_path: Path, lineage_file: Path) -> None:
    config = domain_config(tmp_path)
    store = LocalStore(tmp_path / "artifacts")
    write_generated_run(config, "run2", store, decision="fail")
    kept = quarantine(config, "run2", store, "2025-01-31")

    (complete,) = _events(lineage_file)
    assert complete["eventType"] == "COMPLETE"
    assert f"file://{complete['outputs'][0]['name']}" == kept["uri"]
    assert complete["run"]["facets"]["synth_gate"]["decision"] == "fail"
    assert complete["run"]["facets"]["synth_gate"]["reasons"] == ["gate said fail"]


def test_nothing_is_sent_and_nothing_fails_without_a_transport(tmp_path: Path, monkeypatch) -> None:
    for name in ("AIRFLOW__OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    _forget_provider_settings()
    config = domain_config(tmp_path)
    store = LocalStore(tmp_path / "artifacts")
    write_generated_run(config, "run1", store)
    from synth_core import lineage_events
    from synth_core.snapshot import read_lineage, snapshot_uri

    assert not lineage_events.run_started(config, "run1", read_lineage(config, "run1", store),
                                          snapshot_uri(config, "run1", store))
    assert publish(config, "run1", store, "2025-01-31")["published"]


def test_a_lineage_backend_that_is_down_does_not_fail_the_publish(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "http", "url": "http://127.0.0.1:9", "timeout": 1}))
    _forget_provider_settings()
    try:
        config = domain_config(tmp_path)
        store = LocalStore(tmp_path / "artifacts")
        write_generated_run(config, "run1", store)
        assert publish(config, "run1", store, "2025-01-31")["published"]
    finally:
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
        _forget_provider_settings()
