"""End to end: a domain's DAG with `dag.test()` on the tiny model against the real SeaweedFS S3 server.

Gate outcomes are forced through the domain's gate thresholds, not mocks: with the tiny random
generator MAUVE is near 0, so a floor of 0 passes and a floor of 1 with no review band fails.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from synth_core.store import ArtifactStore, open_store
from tests.integration.conftest_airflow import DagRunResult, load_dags, run_dag, write_domain

pytestmark = pytest.mark.integration
DOMAIN = "dagtest"
DAG_ID = f"synth__{DOMAIN}"
FAIL_GATE = {"mauve_floor": 1.0, "review_band": 0.0}


def domain_dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_prefix: str, **sections: Any) -> dict:
    """The DAGs parsed with a domains folder holding only the test domain (with these config sections)."""
    monkeypatch.setenv("SYNTH_DOMAINS_DIR", str(tmp_path / "domains"))
    write_domain(tmp_path / "domains", s3_prefix, name=DOMAIN, **sections)
    return load_dags()


def published_keys(published: ArtifactStore) -> list[str]:
    return published.list(f"domain={DOMAIN}")


def asset_events(run: DagRunResult) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id).filter(
            AssetModel.name == f"synth_{DOMAIN}_approved", AssetEvent.source_run_id == run.run_id).all()
        return [event.extra for event in rows]


def queued_consumers() -> set[str]:
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetDagRunQueue).join(AssetModel, AssetModel.id == AssetDagRunQueue.asset_id).filter(
            AssetModel.name == f"synth_{DOMAIN}_approved").all()
        return {row.target_dag_id for row in rows}


def test_pass_path_publishes_once_skips_unchanged_training_and_feeds_the_consumer(
        tmp_path, monkeypatch, airflow_db, s3_prefix):
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix)
    published = open_store(f"{s3_prefix}/published")

    first = run_dag(dags[DAG_ID], datetime(2025, 3, 1, tzinfo=UTC))
    assert first.state == "success", first.task_states
    assert first.task_states["review"] == first.task_states["quarantine"] == "skipped"
    assert first.xcoms["train_soft_prompt"]["skipped"] is False
    decoding = first.xcoms["train_soft_prompt"]["decoding"]
    assert decoding["auto"] is True and decoding["reused"] is False  # chosen on the validation split
    assert first.xcoms["filter_and_gate"]["input"] == 48 and first.xcoms["filter_and_gate"]["kept"] <= 24
    assert first.xcoms["publish"]["published"] is True
    prefix = f"domain={DOMAIN}/date=2025-03-01/run={first.run_id}"
    manifest = published.get_json(f"{prefix}/manifest.json")
    assert manifest["status"] == "published" and manifest["rows"] == first.xcoms["publish"]["rows"] > 0
    assert manifest["gate"]["decision"] == "pass" and manifest["approved_by"] is None
    card = published.get_bytes(f"{prefix}/README.md").decode()
    assert f"run `{first.run_id}`" in card and "Approved automatically by the gate" in card
    rows = pd.read_parquet(io.BytesIO(published.get_bytes(f"{prefix}/part-00000.parquet")))
    assert len(rows) == manifest["rows"] and rows["text"].str.len().min() > 0
    assert published.get_json(f"domain={DOMAIN}/_latest.json")["manifest_key"] == f"{prefix}/manifest.json"
    [extra] = asset_events(first)
    assert extra["domain"] == DOMAIN and extra["run_id"] == first.run_id and extra["decision"] == "pass"
    assert extra["metrics"]["mauve"] == first.xcoms["filter_and_gate"]["mauve"]
    assert extra["manifest_sha256"] == first.xcoms["publish"]["manifest_sha256"]
    assert "synth_downstream_eval" in queued_consumers()

    keys_after_first = published_keys(published)
    again = run_dag(dags[DAG_ID], datetime(2025, 3, 1, tzinfo=UTC))  # the same run id, run again
    assert again.run_id == first.run_id and again.state == "success", again.task_states
    assert again.xcoms["publish"]["published"] is False
    assert again.xcoms["publish"]["manifest_sha256"] == first.xcoms["publish"]["manifest_sha256"]
    assert published_keys(published) == keys_after_first
    assert published.get_json(f"{prefix}/manifest.json") == manifest

    later = run_dag(dags[DAG_ID], datetime(2025, 3, 2, tzinfo=UTC), conf={"num_samples": 12})
    assert later.state == "success", later.task_states
    trained = later.xcoms["train_soft_prompt"]
    assert trained["skipped"] is True and trained["run_id"] == first.run_id  # reused the first run's prompt
    assert trained["decoding"]["reused"] is True  # and the decoding chosen for it
    assert trained["decoding"]["temperature"] == decoding["temperature"]
    assert later.xcoms["filter_and_gate"]["input"] == 24 and later.xcoms["filter_and_gate"]["kept"] <= 12
    assert published.get_json(f"domain={DOMAIN}/_latest.json")["run_id"] == later.run_id

    consumer = run_dag(dags["synth_downstream_eval"], datetime(2025, 3, 2, 1, tzinfo=UTC),
                       conf={"domain": DOMAIN, "rows": 8, "steps": 2})
    assert consumer.state == "success", consumer.task_states
    evaluation = consumer.xcoms["evaluate[0]"]
    assert evaluation["run_id"] == later.run_id  # the newest approved batch, found through _latest.json
    assert evaluation["train_rows"] == 8 and evaluation["heldout_rows"] > 0 and len(evaluation["train_losses"]) == 2
    assert evaluation["heldout_loss_before"] > 0 and evaluation["heldout_loss_after"] > 0


def test_validation_failure_stops_before_training(tmp_path, monkeypatch, airflow_db, s3_prefix):
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, validation={"min_rows": 1000})
    run = run_dag(dags[DAG_ID], datetime(2025, 4, 1, tzinfo=UTC), conf={"num_samples": 1000})
    assert run.state == "failed"
    assert run.task_states["validate_targets"] == "failed" and run.tries["validate_targets"] == 1  # no retry
    assert run.task_states["train_soft_prompt"] == run.task_states["done"] == "upstream_failed"
    assert {run.task_states[t] for t in ("filter_and_gate", "route", "publish", "quarantine")} <= {
        "upstream_failed", "skipped"}
    artifacts = open_store(f"{s3_prefix}/artifacts")
    assert artifacts.list(f"{DOMAIN}/{run.run_id}/train") == []
    assert not artifacts.exists(f"{DOMAIN}/_soft_prompt/current.json")
    assert open_store(f"{s3_prefix}/published").list("") == []


def test_a_run_that_could_never_publish_is_refused(tmp_path, monkeypatch, airflow_db, s3_prefix):
    from airflow.sdk.exceptions import ParamValidationError

    dags = domain_dags(tmp_path, monkeypatch, s3_prefix)
    # asked for in the trigger: refused before any run exists, naming the setting
    with pytest.raises(ParamValidationError, match=r"4 is less than the minimum of 10(.|\n)*validation.min_rows=10"):
        run_dag(dags[DAG_ID], datetime(2025, 4, 2, tzinfo=UTC), conf={"num_samples": 4})
    # set so in the YAML itself: refused by the first task, without a retry
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, generation={"num_samples": 4})
    run = run_dag(dags[DAG_ID], datetime(2025, 4, 2, tzinfo=UTC))
    assert run.state == "failed" and run.task_states["refresh_targets"] == "failed"
    assert run.tries["refresh_targets"] == 1 and run.task_states["train_soft_prompt"] == "upstream_failed"


def test_gate_failure_quarantines_and_publishes_nothing(tmp_path, monkeypatch, airflow_db, s3_prefix):
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, gate=FAIL_GATE)
    run = run_dag(dags[DAG_ID], datetime(2025, 5, 1, tzinfo=UTC))
    assert run.state == "success", run.task_states
    assert run.xcoms["filter_and_gate"]["decision"] == "fail"
    assert run.task_states["publish"] == run.task_states["review"] == "skipped"
    assert run.task_states["quarantine"] == run.task_states["done"] == "success"
    published = open_store(f"{s3_prefix}/published")
    assert all(key.startswith("_quarantine/") for key in published.list(""))
    assert not published.exists(f"domain={DOMAIN}/_latest.json")
    manifest = json.loads(published.get_bytes(
        f"_quarantine/domain={DOMAIN}/date=2025-05-01/run={run.run_id}/manifest.json"))
    assert manifest["status"] == "quarantined" and manifest["reason"].startswith("gate decision 'fail'")
    assert asset_events(run) == []


def test_a_batch_the_gate_passes_but_validation_rejects_is_quarantined_not_published(
        tmp_path, monkeypatch, airflow_db, s3_prefix):
    never = {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "text", "regex": "^NEVER"},
             "on": "synthetic"}
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, validation={"extra_expectations": [never]})
    run = run_dag(dags[DAG_ID], datetime(2025, 5, 2, tzinfo=UTC))
    assert run.state == "success", run.task_states
    assert run.xcoms["filter_and_gate"]["decision"] == "pass" and not run.xcoms["validate_synthetic"]["success"]
    assert run.task_states["publish"] == run.task_states["review"] == "skipped"
    assert run.task_states["quarantine"] == run.task_states["done"] == "success"
    published = open_store(f"{s3_prefix}/published")
    assert all(key.startswith("_quarantine/") for key in published.list(""))
    manifest = published.get_json(f"_quarantine/domain={DOMAIN}/date=2025-05-02/run={run.run_id}/manifest.json")
    assert manifest["reason"].startswith("synthetic validation failed after gate decision 'pass'")
    assert asset_events(run) == []


def test_synth_run_cli_runs_every_step_without_airflow(tmp_path, s3_prefix, capsys):
    from synth_core.cli import main

    path = write_domain(tmp_path / "domains", s3_prefix, name=DOMAIN)
    assert main(["run", str(path), "--run-id", "cli-run", "--ds", "2025-07-01"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["gate"]["decision"] == "pass" and summary["publish"]["published"] is True
    manifest = open_store(f"{s3_prefix}/published").get_json(
        f"domain={DOMAIN}/date=2025-07-01/run=cli-run/manifest.json")
    assert manifest["rows"] == summary["publish"]["rows"]
