"""The review path: a borderline gate result waits for a person, who answers through Airflow's REST API.

A `Reviewer` thread logs in as a SimpleAuthManager user, finds the open Human-in-the-loop request of
the run and PATCHes its answer, exactly as the Required Actions page does, while `dag.test()` keeps
the run waiting. The review operator under test is the real HITL branch operator (`GateReviewOperator`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from synth_core.store import open_store
from tests.integration.conftest_airflow import REVIEW_COMMENTS, REVIEWER, run_dag
from tests.integration.test_dag_paths import DAG_ID, DOMAIN, asset_events, domain_dags

pytestmark = pytest.mark.integration
# the tiny model's MAUVE is near 0: below a floor of 1, but within a review band of 1
REVIEW_GATE = {"mauve_floor": 1.0, "review_band": 1.0}


def test_review_approved_publishes_with_the_reviewer(tmp_path, monkeypatch, airflow_api, s3_prefix):
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, gate=REVIEW_GATE)
    run = run_dag(dags[DAG_ID], datetime(2025, 6, 1, tzinfo=UTC), api=airflow_api, review="Approve")
    assert run.review["status"] == 200 and run.review["responded_by"]["name"] == REVIEWER
    assert "needs a human review" in run.review["request"]["body"]
    body = run.review["request"]["body"]
    assert re.search(r"\| mauve \| \d\.\d{3} \| \d\.\d{3} to \d\.\d{3} \|", body)  # three decimals, with its interval
    assert f"(/synth-gates/domains/{DOMAIN}/runs/" in body  # a link to the gate page, not a file path
    assert re.search(r"\| mauve_bar .*\| \d\.\d{3} \|", body) and "Without an answer within" in body
    assert run.state == "success", run.task_states
    assert run.xcoms["filter_and_gate"]["decision"] == "review"
    assert run.task_states["review"] == run.task_states["publish"] == "success"
    assert run.task_states["quarantine"] == "skipped"
    published = open_store(f"{s3_prefix}/published")
    prefix = f"domain={DOMAIN}/date=2025-06-01/run={run.run_id}"
    manifest = published.get_json(f"{prefix}/manifest.json")
    assert manifest["approved_by"] == REVIEWER and manifest["review_comment"] == REVIEW_COMMENTS["Approve"]
    card = published.get_bytes(f"{prefix}/README.md").decode()
    assert f'Approved by **{REVIEWER}** after review. Their comment: "{REVIEW_COMMENTS["Approve"]}"' in card
    [extra] = asset_events(run)
    assert extra["approved_by"] == REVIEWER and extra["decision"] == "review"
    assert extra["review_comment"] == REVIEW_COMMENTS["Approve"]


def test_review_rejected_quarantines(tmp_path, monkeypatch, airflow_api, s3_prefix):
    dags = domain_dags(tmp_path, monkeypatch, s3_prefix, gate=REVIEW_GATE)
    run = run_dag(dags[DAG_ID], datetime(2025, 6, 2, tzinfo=UTC), api=airflow_api, review="Reject")
    assert run.review["status"] == 200 and run.review["chosen_options"] == ["Reject"]
    assert run.review["responded_by"]["name"] == REVIEWER
    assert run.state == "success", run.task_states
    assert run.task_states["review"] == "success" and run.task_states["publish"] == "skipped"
    assert run.task_states["quarantine"] == run.task_states["done"] == "success"
    published = open_store(f"{s3_prefix}/published")
    assert all(key.startswith("_quarantine/") for key in published.list(""))
    manifest = published.get_json(f"_quarantine/domain={DOMAIN}/date=2025-06-02/run={run.run_id}/manifest.json")
    assert manifest["reason"].startswith("gate decision 'review'")
    assert manifest["reason"].endswith(f"rejected on review by {REVIEWER}: {REVIEW_COMMENTS['Reject']}")
    assert asset_events(run) == []
