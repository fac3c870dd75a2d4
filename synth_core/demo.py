"""`make demo`: one seed domain end to end through its real Airflow DAG, on the embedded defaults.

Airflow runs from a folder of the repository (`.airflow/`, SQLite, git-ignored); `airflow dags test`
executes the domain's DAG in this process's machine, with the real SmolLM2 on the CPU. The domain
warm-starts from the soft prompt kept in `domains/prompts/` (as a nightly run continues from last
night's prompt), retrains briefly, generates, gates and publishes to the local `file://published`
bucket. At the end it prints the gate decision and where everything is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from synth_core.layout import (
    DATASET_CARD,
    GATE_REPORT_HTML,
    GATE_REPORT_JSON,
    GATE_STEP,
    MANIFEST,
    dag_id_for,
    latest_key,
    partition_glob,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_DOMAIN = "boolq"
DEMO_CONF = {"num_samples": 400, "steps": 40, "force_retrain": True}
LOGICAL_DATE = "2026-01-05"
QUIET_LOGGERS = " ".join(f"{name}=WARNING" for name in (
    "airflow", "alembic", "task", "faiss", "great_expectations", "sentence_transformers", "openlineage"))


def airflow_env(unattended: bool = True) -> dict[str, str]:
    """The demo's Airflow home (`.airflow/`, or $SYNTH_DEMO_AIRFLOW_HOME) on the repository's DAGs and
    domains (or $SYNTH_DOMAINS_DIR). `unattended` (the demo): nobody answers a review, so it defaults to Reject
    after 3 minutes; `make ui` keeps the DAG's own review timeout, for a person to answer."""
    home = Path(os.environ.get("SYNTH_DEMO_AIRFLOW_HOME") or REPO / ".airflow")
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "SYNTH_DOMAINS_DIR": os.environ.get("SYNTH_DOMAINS_DIR") or str(REPO / "domains"),
           "TOKENIZERS_PARALLELISM": "false"}
    if unattended:
        env["SYNTH_REVIEW_TIMEOUT_MINUTES"] = "3"
        # the demo prints the steps' own lines (figures, progress), not Airflow's and the libraries' bookkeeping
        env["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] = QUIET_LOGGERS
    else:
        env.pop("SYNTH_REVIEW_TIMEOUT_MINUTES", None)
    return env


def airflow(*args: str, unattended: bool = True) -> None:
    command = [str(Path(sys.executable).with_name("airflow")), *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, env=airflow_env(unattended), check=True)


def newest_run(domain: str) -> Path:
    runs = sorted((REPO / "artifacts" / domain).glob(f"*/{GATE_STEP}/{GATE_REPORT_JSON}"),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"no gate report under {REPO / 'artifacts' / domain}: the DAG did not reach the gate")
    return runs[-1].parents[1]


def ui() -> int:
    """`make ui`: the same Airflow home as the demo, all components in one process (airflow standalone).

    Training and generation run in the `gpu` pool (as in a deployment, docker/airflow-init.sh): without
    it a run triggered from the UI would wait in `train_soft_prompt` forever, so it is created first."""
    airflow("db", "migrate", unattended=False)
    airflow("pools", "set", "gpu", "1", "SoftSRV training and generation (one at a time here)", unattended=False)
    command = [str(Path(sys.executable).with_name("airflow")), "standalone"]
    env = airflow_env(unattended=False)
    env["SYNTH_SCHEDULES"] = "off"  # runs only when triggered: a CPU cannot run a domain's nightly batch
    # standalone starts its components as `airflow <component>` from PATH: make it this environment's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    print(f"Airflow UI on http://localhost:{env.get('AIRFLOW__API__PORT', '8080')}; the admin password is "
          f"printed below and kept in {env['AIRFLOW_HOME']}", flush=True)
    os.execve(command[0], command, env)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["ui"]:
        return ui()
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="training and sampling seed (default: the YAML's)")
    args = parser.parse_args(argv)
    conf = {**DEMO_CONF, **({"seed": args.seed} if args.seed is not None else {})}
    started = time.perf_counter()
    airflow("db", "migrate")
    airflow("dags", "reserialize")
    airflow("dags", "test", dag_id_for(DEMO_DOMAIN), LOGICAL_DATE, "--conf", json.dumps(conf))
    run_dir = newest_run(DEMO_DOMAIN)
    report = json.loads((run_dir / GATE_STEP / GATE_REPORT_JSON).read_text())
    partitions = partition_glob(DEMO_DOMAIN, run_dir.name)
    published = sorted((REPO / "published").glob(partitions))
    quarantined = sorted((REPO / "published" / "_quarantine").glob(partitions))
    mauve = report.get("mauve") or {}
    print("\n=== demo finished in %.0f s ===" % (time.perf_counter() - started))
    print(f"domain            {DEMO_DOMAIN} (DAG {dag_id_for(DEMO_DOMAIN)}, run {run_dir.name})")
    print(f"gate decision     {report['decision']}: {'; '.join(report.get('reasons', []))}")
    if mauve:
        print(f"MAUVE             synthetic {mauve['synthetic']['mean']:.3f} vs real-vs-real reference "
              f"{mauve['reference']['mean']:.3f}")
    print(f"gate report       {run_dir / GATE_STEP / GATE_REPORT_HTML}")
    print(f"run artifacts     {run_dir}")
    for folder in published:
        print(f"published data    {folder}/part-*.parquet")
        print(f"manifest          {folder / MANIFEST}")
        print(f"dataset card      {folder / DATASET_CARD}")
        print(f"latest pointer    {REPO / 'published' / latest_key(DEMO_DOMAIN)}")
    for folder in quarantined:
        print(f"quarantined batch {folder}")
    print("browse the run     make ui   (then http://localhost:8080, user admin, password in .airflow/)")
    if not published:
        print(f"\nNOT PUBLISHED: the gate decided {report['decision']!r} and nobody approved the batch; "
              "the reasons above and the gate report say why.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
