"""The operator's and the reviewer's walk through the real Airflow UI, in a real headless Chromium,
against `make ui` itself (`python -m synth_core.demo ui`: `airflow standalone` with the `gpu` pool).

A tiny domain (`embedded:tiny-random`) whose gate sends every batch to review. As a person would:
log in on Airflow's login page; trigger with too few samples and read the refusal, which names the
setting; trigger with enough; watch the gate page say "awaiting review until …"; follow its link to
the Required Action; approve with a comment; see the gate page say published, by whom and why.
Screenshots of the trigger form, the gate page, the review form and the run's detail page are kept
under test-artifacts/ (linked from the README).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from synth_core.store import open_store
from tests.integration.airflow_server import (
    REPO,
    AirflowHome,
    ApiClient,
    free_port,
    request_token,
    wait_until_healthy,
)
from tests.integration.chromium import Chromium
from tests.integration.conftest_airflow import write_domain

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
DOMAIN = "walkthrough"
DAG_ID = f"synth__{DOMAIN}"
COMMENT = "rows read well; format checked on 10"
REVIEW_EVERY_BATCH = {"mauve_floor": 1.0, "review_band": 1.0}  # the tiny model's MAUVE is far below 1


@dataclass
class MakeUi:
    base: str
    home: AirflowHome
    api: ApiClient
    store_uri: str


@pytest.fixture(scope="module")
def make_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeUi]:
    tmp = tmp_path_factory.mktemp("make_ui")
    store_uri = (tmp / "store").as_uri()
    write_domain(tmp / "domains", store_uri, name=DOMAIN, schedule=None, gate=REVIEW_EVERY_BATCH)
    port = free_port()
    home = AirflowHome(tmp / "airflow", config={
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "SYNTH_DEMO_AIRFLOW_HOME": str(tmp / "airflow"),
        "SYNTH_DOMAINS_DIR": str(tmp / "domains"),
        "SYNTH_WORK_DIR": str(tmp / "work"),
    })
    try:
        ui = home.start("make-ui", sys.executable, "-m", "synth_core.demo", "ui")
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{base}/api/v2/monitor/health", ui, 300)
        api = ApiClient(base, request_token(base, "admin", home.passwords["admin"]))
        api.wait_for(f"/dags/{DAG_ID}", lambda dag: dag.get("dag_id") == DAG_ID, 180, f"{DAG_ID} parsed", home)
        yield MakeUi(base, home, api, store_uri)
    finally:
        home.stop_all()


def log_in(browser: Chromium, ui: MakeUi, path: str) -> None:
    """Open `path`; on Airflow's login page, sign in as admin with the form, as a person does."""
    browser.open(ui.base + path)
    browser.wait_for("!!document.querySelector('input[name=username]')")
    browser.type_into("input[name=username]", "admin")
    browser.type_into("input[name=password]", ui.home.passwords["admin"])
    browser.click("button[type=submit]")
    browser.wait_for(f"location.pathname === {json.dumps(path)} && document.readyState === 'complete'")


def submit_trigger_form(browser: Chromium, num_samples: int) -> None:
    """In the open Trigger form, type `num_samples` into its field (over what it held) and submit."""
    browser.wait_for("!!document.getElementById('number-input:element_num_samples:inc')")
    field = browser.evaluate("document.getElementById('number-input:element_num_samples:inc')"
                             ".getAttribute('aria-controls')")
    browser.type_into(f"[id={json.dumps(field)}]", str(num_samples))
    browser.click("[data-testid=trigger-dag-submit]")


def task_states(ui: MakeUi, run_id: str) -> dict[str, str | None]:
    _, listing = ui.api.call("GET", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in listing["task_instances"]}


def gate_row(browser: Chromium, run_id: str) -> str:
    return browser.evaluate(f"document.querySelector('tr[data-run-id={json.dumps(run_id)}]').innerText")


def test_trigger_refused_then_review_approve_publish_in_the_browser(make_ui: MakeUi, tmp_path: Path):
    ui = make_ui
    with Chromium(tmp_path, timeout_s=60) as browser:
        log_in(browser, ui, f"/dags/{DAG_ID}")

        # too few rows: refused up front, the refusal naming the setting that needs more
        browser.click("button[aria-label='Trigger Dag']")
        submit_trigger_form(browser, 3)
        refusal = browser.wait_for("Array.from(document.querySelectorAll('[role=dialog]'))"
                                   ".map(d => d.innerText).find(t => t.includes('400 Bad Request'))")
        assert "3 is less than the minimum of 10" in refusal and "validation.min_rows=10" in refusal, refusal
        browser.screenshot(ARTIFACTS / "ui_trigger_refused.png")
        assert ui.api.call("GET", f"/dags/{DAG_ID}/dagRuns")[1]["total_entries"] == 0

        # enough rows: the run starts, and the gate sends its batch to review
        submit_trigger_form(browser, 24)
        run_path = browser.wait_for(f"location.pathname.startsWith('/dags/{DAG_ID}/runs/') && location.pathname")
        run_id = unquote(run_path.rsplit("/", 1)[-1])
        ui.api.wait_for(f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                        lambda body: any(ti["task_id"] == "review" and ti["state"] == "awaiting_input"
                                         for ti in body["task_instances"]), 600, "the batch in review", ui.home)

        browser.open(f"{ui.base}/synth-gates/?domain={DOMAIN}")
        row = gate_row(browser, run_id)
        assert "review" in row and "awaiting review until " in row and " UTC" in row, row
        browser.screenshot(ARTIFACTS / "ui_gate_page_awaiting_review.png")

        # its link opens the review task's Required Action: the form, with a comment, answered Approve
        browser.click("a[data-end-state='awaiting review']")
        browser.wait_for("!!document.getElementById('element_comment')")
        assert browser.evaluate("location.pathname").endswith("/tasks/review/required_actions")
        form = browser.evaluate("document.body.innerText")
        assert "needs a human review" in form and "Without an answer within 7 days" in form, form[-1500:]
        browser.screenshot(ARTIFACTS / "ui_review_form.png")
        browser.type_into("#element_comment", COMMENT)
        browser.wait_for("!document.querySelector('[data-testid=hitl-option-Approve]').disabled")
        browser.click("[data-testid=hitl-option-Approve]")

        finished = ui.api.wait_for(f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}",
                                   lambda r: r["state"] in ("success", "failed"), 600, "the approved run", ui.home)
        states = task_states(ui, run_id)
        assert finished["state"] == "success", states
        assert states["publish"] == "success" and states["quarantine"] == "skipped", states

        browser.open(f"{ui.base}/synth-gates/?domain={DOMAIN}")
        row = gate_row(browser, run_id)
        assert "published" in row and f"admin: {COMMENT}" in row, row
        assert browser.evaluate("document.querySelector('a[data-end-state]').dataset.endState") == "published"
        browser.open(f"{ui.base}/synth-gates/domains/{DOMAIN}/runs/{quote(run_id, safe='')}")
        detail = browser.evaluate("document.body.innerText")
        assert "published" in detail and COMMENT in detail
        browser.screenshot(ARTIFACTS / "ui_gate_run_detail.png")

    published = open_store(f"{ui.store_uri}/published")
    [manifest_key] = [k for k in published.list(f"domain={DOMAIN}") if k.endswith("manifest.json")]
    manifest = published.get_json(manifest_key)
    assert manifest["approved_by"] == "admin" and manifest["review_comment"] == COMMENT
