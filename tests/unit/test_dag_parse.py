"""Parse hygiene of `dags/`: what the DAG processor sees, measured in a fresh interpreter.

A fresh process, because this one may already hold torch or transformers from other tests. The probe
imports Airflow (whose own imports and DB setup are allowed), then records every socket connection and
database connect attempted while the DAG folder is parsed, the heavy modules it imported and the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "great_expectations", "mauve", "peft", "sentence_transformers")

PROBE = textwrap.dedent("""
    import json, socket, sqlite3, sys, time
    import psycopg2
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import BundleDagBag

    calls = []
    def refuse(what):
        def record(*args, **kwargs):
            calls.append(f"{what}{args[1:2] if what.startswith('socket') else ''}")
            raise OSError(f"{what} during DAG parsing")
        return record
    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.create_connection = refuse("socket.create_connection")
    sqlite3.connect = refuse("sqlite3.connect")
    psycopg2.connect = refuse("psycopg2.connect")

    def refusal(dag):
        # what the trigger form's validation says to num_samples=3 (None when it accepts it)
        if "num_samples" not in dag.params:
            return None
        try:
            dag.params.get_param("num_samples").resolve(3)
        except Exception as exc:
            return str(exc)

    dags_folder = sys.argv[1]
    before = set(sys.modules)
    started = time.perf_counter()
    bag = BundleDagBag(dag_folder=dags_folder, bundle_path=dags_folder, bundle_name="dags-folder")
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "timeout": conf.getfloat("core", "dagbag_import_timeout"),
        "import_errors": bag.import_errors, "calls": calls,
        "imported": sorted({m.split(".")[0] for m in set(sys.modules) - before}),
        "numpy_loaded": "numpy" in sys.modules,
        "synth_core_modules": sorted(m for m in sys.modules if m.startswith("synth_core")),
        "dags": {d.dag_id: {"tags": sorted(d.tags), "owners": sorted({t.owner for t in d.tasks}),
                            "retries": min(t.retries for t in d.tasks), "doc_md": d.doc_md or "",
                            "description": d.description or "", "schedule": str(d.schedule),
                            "max_active_runs": d.max_active_runs,
                            "too_few_samples": refusal(d),
                            "tasks": {t.task_id: {"queue": t.queue, "pool": t.pool,
                                                  "timeout": t.execution_timeout and t.execution_timeout.total_seconds(),
                                                  "backoff": bool(t.retry_exponential_backoff)} for t in d.tasks}}
                 for d in bag.dags.values()},
    }))
""")


def parse_dags(tmp_path: Path, domains_dir: Path | None = None, **settings: str) -> dict:
    env = {**settings, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags")}
    if "PYTHONPATH" in os.environ:  # a checkout other than the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if domains_dir:
        env["SYNTH_DOMAINS_DIR"] = str(domains_dir)
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "dags")], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return parse_dags(tmp_path_factory.mktemp("parse"))


def test_every_domain_yaml_becomes_a_dag_with_tags_owner_and_retries(parsed: dict):
    assert parsed["import_errors"] == {}
    domains = sorted(p.stem for p in (REPO / "domains").glob("*.yaml"))
    assert sorted(parsed["dags"]) == sorted([f"synth__{d}" for d in domains] + ["synth_downstream_eval"])
    for dag_id, dag in parsed["dags"].items():
        assert dag["tags"] and "synth" in dag["tags"], dag_id
        assert dag["owners"] and "airflow" not in dag["owners"], dag_id
        assert dag["retries"] >= 2, dag_id
        assert dag["doc_md"].strip(), dag_id


def test_domain_dags_wire_queues_pools_timeouts_and_one_run_at_a_time(parsed: dict):
    config = yaml.safe_load((REPO / "domains" / "gsm8k.yaml").read_text())
    dag = parsed["dags"]["synth__gsm8k"]
    assert dag["max_active_runs"] == 1 and dag["schedule"] == config["schedule"]
    assert set(dag["tags"]) == {"synth", *config["tags"]}
    assert dag["owners"] == [config["owner"]] and config["description"] in dag["doc_md"]
    for task_id, task in dag["tasks"].items():
        on_gpu = task_id in ("train_soft_prompt", "generate")
        assert (task["queue"], task["pool"]) == (("gpu", "gpu") if on_gpu else ("default", "default_pool")), task_id
        assert task["backoff"], task_id
        assert task["timeout"] or task_id in ("review", "done"), task_id  # review waits on response_timeout


def test_a_trigger_asking_for_fewer_rows_than_can_publish_is_refused_naming_the_setting(parsed: dict):
    for name in ("gsm8k", "mbpp", "boolq"):
        config = yaml.safe_load((REPO / "domains" / f"{name}.yaml").read_text())
        floor, setting = max((config.get("validation", {}).get("min_rows", 10), "validation.min_rows"),
                             (config.get("gate", {}).get("min_rows", 20), "gate.min_rows"))
        refusal = parsed["dags"][f"synth__{name}"]["too_few_samples"]
        assert refusal and f"3 is less than the minimum of {floor}" in refusal, refusal
        assert f"{setting}={floor}: fewer never publish" in refusal, refusal


def test_parsing_is_cheap_and_side_effect_free(parsed: dict):
    assert parsed["calls"] == []
    assert not set(HEAVY) & set(parsed["imported"])
    assert not parsed["numpy_loaded"]  # nor by Airflow itself, or this check would be moot
    assert not [m for m in parsed["synth_core_modules"] if m.startswith(("synth_core.quality", "synth_core.store"))]
    assert parsed["seconds"] < min(5.0, parsed["timeout"] / 6)


def test_a_broken_domain_yaml_leaves_the_others_loadable(tmp_path: Path):
    domains = tmp_path / "domains"
    domains.mkdir()
    for name in ("gsm8k", "mbpp"):
        (domains / f"{name}.yaml").write_text((REPO / "domains" / f"{name}.yaml").read_text())
    broken = yaml.safe_load((REPO / "domains" / "boolq.yaml").read_text())
    broken["generation"]["num_samples"] = -5
    (domains / "boolq.yaml").write_text(yaml.safe_dump(broken))

    parsed = parse_dags(tmp_path, domains)
    assert parsed["import_errors"] == {}
    assert {"synth__gsm8k", "synth__mbpp"} <= set(parsed["dags"])
    assert len(parsed["dags"]["synth__gsm8k"]["tasks"]) > 5
    placeholder = parsed["dags"]["synth__boolq"]
    assert "broken-config" in placeholder["tags"] and list(placeholder["tasks"]) == ["config_error"]
    assert placeholder["schedule"] == "None"
    for shown in (placeholder["doc_md"], placeholder["description"]):
        assert str(domains / "boolq.yaml") in shown and "generation.num_samples=-5" in shown


def test_route_names_the_task_for_every_gate_decision_and_validation_result():
    from synth_core.routing import next_step, quarantine_reason

    valid, invalid = {"success": True}, {"success": False, "message": "1 of 6 expectations failed"}
    assert [next_step({"decision": d}, valid) for d in ("pass", "review", "fail")] == [
        "publish", "review", "quarantine"]
    assert {next_step({"decision": d}, invalid) for d in ("pass", "review", "fail")} == {"quarantine"}
    assert quarantine_reason({"decision": "pass", "reasons": []}, invalid).startswith(
        "synthetic validation failed after gate decision 'pass': 1 of 6")
    assert "rejected on review" in quarantine_reason({"decision": "review", "reasons": ["x"]}, valid)


def test_key_figures_line_puts_rounded_numbers_first_and_shortened_hashes_last():
    from synth_core.pipeline import key_figures

    line = key_figures("train_soft_prompt", {
        "checkpoint_hash": "9f2c" * 16, "run_id": "manual__2026-12-01", "skipped": False, "final_loss": 1.276412345,
        "steps": 40, "decoding": {"temperature": 0.7}, "snapshot_hash": "ab" * 32})
    assert line == ("train_soft_prompt: final_loss=1.276, steps=40, run_id=manual__2026-12-01, skipped=False, "
                    "checkpoint_hash=9f2c9f2c9f2c, snapshot_hash=abababababab")


def test_schedules_off_makes_every_domain_manual_only(tmp_path: Path):
    """`make ui` sets SYNTH_SCHEDULES=off: unpausing a domain must not start its full-size scheduled run."""
    parsed = parse_dags(tmp_path, SYNTH_SCHEDULES="off")
    assert {d["schedule"] for dag_id, d in parsed["dags"].items() if dag_id.startswith("synth__")} == {"None"}
