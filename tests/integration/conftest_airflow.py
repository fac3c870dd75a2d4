"""Airflow inside the test process: an isolated AIRFLOW_HOME and metadata DB, DAG runs with `dag.test()`,
and a reviewer who answers Human-in-the-loop requests through Airflow's own REST API.

The metadata DB is SQLite in the session's AIRFLOW_HOME, or a fresh PostgreSQL database
(`synth_airflow_test_<random>`, dropped afterwards) when SYNTH_TEST_AIRFLOW_DB=postgresql. Airflow reads
its configuration once, on first import, so `airflow_db` sets the environment before anything imports it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DB_ENV = "SYNTH_TEST_AIRFLOW_DB"  # "sqlite" (default) or "postgresql"
REVIEWER, REVIEWER_PASSWORD = "reviewer", secrets.token_urlsafe(12)
SEED_DATA = REPO / "domains" / "data" / "boolq" / "train.jsonl"


def _postgres_database(postgres_url: str) -> tuple[str, Any]:
    """A new, empty database on the local PostgreSQL: (its URL, a function that drops it)."""
    import sqlalchemy as sa

    name = f"synth_airflow_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return postgres_url.rsplit("/", 1)[0] + f"/{name}", drop


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """Configure Airflow for this process, migrate its metadata DB once and add the `gpu` pool; yields the DB URL."""
    if "airflow.settings" in sys.modules:
        pytest.fail("Airflow was imported before the airflow_db fixture could configure it")
    home = tmp_path_factory.mktemp("airflow_home")
    drop = None
    if os.environ.get(DB_ENV, "sqlite") == "postgresql":
        url, drop = _postgres_database(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{home / 'airflow.db'}"
    (home / "passwords.json").write_text(json.dumps({REVIEWER: REVIEWER_PASSWORD}))
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # an unpaused consumer is queued by Asset events
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{REVIEWER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "SYNTH_WORK_DIR": str(home / "work"),
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)

    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    initdb()
    print(f"\nAirflow metadata DB: {url}")
    Pool.create_or_update_pool("gpu", slots=1, description="GPU workers: training and generation",
                               include_deferred=False)
    yield url
    from airflow import settings as airflow_settings

    airflow_settings.dispose_orm()
    if drop:
        drop()
    for name, value in saved.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


@dataclass
class AirflowApi:
    """Airflow's REST API app in-process, and a reviewer's bearer token for it."""

    client: Any
    token: str

    def patch(self, path: str, body: dict) -> Any:
        return self.client.patch(f"/api/v2{path}", json=body, headers={"Authorization": f"Bearer {self.token}"})

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v2{path}", params=params, headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="session")
def airflow_api(airflow_db: str) -> Iterator[AirflowApi]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(apps="core")) as client:
        response = client.post("/auth/token", json={"username": REVIEWER, "password": REVIEWER_PASSWORD})
        assert response.status_code == 201, response.text
        yield AirflowApi(client, response.json()["access_token"])


REVIEW_COMMENTS = {"Approve": "format checked on 20 rows", "Reject": "answers look copied"}


class Reviewer(threading.Thread):
    """Answers the first open Human-in-the-loop request of a DAG through the REST API, as a person would
    in the Required Actions page, while `dag.test()` waits for it in the main thread."""

    def __init__(self, api: AirflowApi, dag_id: str, option: str):
        super().__init__(daemon=True)
        self.api, self.dag_id, self.option = api, dag_id, option
        self.done = threading.Event()
        self.answered: dict | None = None
        self.error: str | None = None

    def run(self) -> None:
        # Errors are retried (a request can fail while the run's own session holds the row) and printed at
        # once, so a CI log shows them.
        while not self.done.wait(0.5):
            try:
                response = self.api.get(f"/dags/{self.dag_id}/dagRuns/~/hitlDetails", response_received=False)
                waiting = response.json()["hitl_details"] if response.status_code == 200 else []
                if response.status_code != 200:
                    self.error = f"GET hitlDetails: {response.status_code} {response.text[:300]}"
                    print(f"Reviewer: {self.error}", flush=True)
                # answer once the task is parked, as a person would: an answer racing the park (0.1 s after
                # the request is written) was recorded but never resumed the task in `dag.test()` on PostgreSQL
                if not waiting or waiting[0]["task_instance"]["state"] != "awaiting_input":
                    continue
                ti = waiting[0]["task_instance"]
                answer = self.api.patch(f"/dags/{self.dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                                        f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
                                        {"chosen_options": [self.option],
                                         "params_input": {"comment": REVIEW_COMMENTS[self.option]}})
                if answer.status_code != 200:
                    self.error = f"PATCH hitlDetails: {answer.status_code} {answer.text[:300]}"
                    print(f"Reviewer: {self.error}", flush=True)
                    continue
                self.answered, self.error = {"status": answer.status_code, "request": waiting[0], **answer.json()}, None
                return
            except Exception as exc:
                self.error = repr(exc)
                print(f"Reviewer: {self.error}", flush=True)


@dataclass
class DagRunResult:
    run_id: str
    state: str
    task_states: dict[str, str]  # task id (mapped: "task[i]") -> state
    tries: dict[str, int]  # task id (mapped: "task[i]") -> try number
    xcoms: dict[str, Any]  # task id (mapped: "task[i]") -> return value, for tasks that returned one
    review: dict | None = None


def write_domain(directory: Path, store_uri: str, name: str = "dagtest", **sections: dict) -> Path:
    """A tiny domain YAML on the repo's BoolQ seed data, the tiny random generator and `store_uri`."""
    data: dict[str, Any] = {
        "name": name, "description": "BoolQ-style yes/no questions (DAG tests).", "owner": "dag-tests",
        "schedule": "@daily", "tags": ["test"],
        "source": {"kind": "file", "uri": str(SEED_DATA), "text_template": "Question: {question}\nAnswer: {answer}",
                   "max_rows": 80, "holdout_fraction": 0.25},
        "validation": {"min_rows": 10, "text_length": [1, 2000]},
        "generator": {"model": "embedded:tiny-random"},
        "soft_prompt": {"variant": "mc", "num_tokens": 4, "steps": 2, "batch_size": 4, "max_length": 32,
                        "mlp_hidden": 16, "eval_rows": 8, "eval_every": 100, "checkpoint_every": 100,
                        "log_every": 100},
        # random text lies off any real support: no support cut (selection still picks num_samples rows)
        "generation": {"num_samples": 24, "shards": 2, "batch_size": 12, "max_new_tokens": 16,
                       "support_quantile": None, "auto_rows": 12},
        "gate": {"mauve_floor": 0.0, "mauve_fraction_of_reference": 0.0, "review_band": 0.0,
                 "leakage_margin": 1.0, "max_duplicate_rate": 1.0, "max_length_ks": 1.0, "min_rows": 5,
                 "drop_unfinished": False,  # the tiny random model never emits end-of-sequence
                 "mauve_seeds": [0]},
        "publish": {"uri": f"{store_uri}/published", "license": "CC BY-SA 3.0 (BoolQ)"},
        "store": {"uri": f"{store_uri}/artifacts"},
    }
    for section, values in sections.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_dags() -> dict[str, Any]:
    """Parse the DAG folder as the DAG processor does (the folder is a bundle on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags", bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def run_dag(dag: Any, logical_date: datetime, conf: dict | None = None, api: AirflowApi | None = None,
            review: str | None = None) -> DagRunResult:
    """One `dag.test()` run (run id `manual__<logical_date>`, so running a date again re-runs that run id);
    with `review` ("Approve"/"Reject") a Reviewer thread answers its HITL request."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    reviewer = Reviewer(api, dag.dag_id, review) if review else None
    if reviewer:
        reviewer.start()
    try:
        dag_run = dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)
    finally:
        if reviewer:
            reviewer.done.set()
            reviewer.join(timeout=10)
    if reviewer:
        assert reviewer.answered is not None, f"the reviewer never answered (last error: {reviewer.error})"
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id).all()
        names = {ti: ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]" for ti in tis}
        states, tries = {names[ti]: str(ti.state) for ti in tis}, {names[ti]: ti.try_number for ti in tis}
        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag.dag_id, key="return_value")
        xcoms = {x.task_id if x.map_index < 0 else f"{x.task_id}[{x.map_index}]": XComModel.deserialize_value(x)
                 for x in session.scalars(query)}
    return DagRunResult(dag_run.run_id, str(dag_run.state), states, tries, xcoms,
                        reviewer.answered if reviewer else None)
