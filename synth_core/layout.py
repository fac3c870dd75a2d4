"""Where everything lives: step names, artifact file names, store keys, the DAG id prefix, exit codes.

The one owner of these names: every other module imports them from here, so renaming an artifact or
a step is a one-line change. A leaf module: it imports nothing of ours.

Artifact store (run-scoped):   <domain>/<run_id>/<step>/<file>
Publish destination:           domain=<d>/date=<ds>/run=<run_id>/{part-*.parquet, manifest.json, README.md}
                               domain=<d>/_latest.json
Quarantine destination:        the same partition layout under the quarantine URI
"""

from __future__ import annotations

# Steps: the store prefix each step writes under <domain>/<run_id>/.
REFRESH_STEP = "refresh"
VALIDATE_TARGETS_STEP = "validate_targets"
TRAIN_STEP = "train"
GENERATE_STEP = "generate"
GATE_STEP = "gate"
VALIDATE_SYNTHETIC_STEP = "validate_synthetic"
REVIEW_STEP = "review"

# Files inside a step's prefix.
RESOLVED_CONFIG = "resolved_config.json"  # the run's config as its first step resolved it, under refresh/
SNAPSHOT_FILE = "target_snapshot.parquet"
LINEAGE_FILE = "lineage.json"
GATE_REPORT_JSON = "gate_report.json"
GATE_REPORT_HTML = "gate_report.html"
GATE_DROPPED_ROWS = "gate_dropped_rows.parquet"
APPROVED_BATCH_DIR = "batch"  # the gate's kept rows, under the gate step
VALIDATION_JSON = "validation.json"
VALIDATION_HTML = "validation.html"
REVIEW_REQUEST = "review_request.json"  # when a batch went to human review and until when, under review/
VALIDATION_STEPS = {"targets": VALIDATE_TARGETS_STEP, "synthetic": VALIDATE_SYNTHETIC_STEP}  # per validated batch

# Published (and quarantined) partitions.
MANIFEST = "manifest.json"
DATASET_CARD = "README.md"
LATEST_POINTER = "_latest.json"

# The domain's current soft prompt, outside any run: a later run reuses it when nothing changed.
CURRENT_PROMPT_KEY = "{domain}/_soft_prompt/current.json"
DECODING_FILE = "decoding.json"  # the run's temperature and top-p (chosen or fixed), under train/
DECODING_CHOICE_KEY = "{domain}/_soft_prompt/decoding/{fingerprint}.json"  # auto choices, reused while unchanged

DAG_ID_PREFIX = "synth__"

# `synth gate` and `synth run` exit with these per gate decision (2 is argparse's usage error).
GATE_EXIT_CODES = {"pass": 0, "review": 3, "fail": 4}

# The gate pages (Airflow UI plugin), mounted on the api-server at this path.
GATE_PAGES_URL = "/synth-gates"


def gate_page_run_path(domain: str, run_id: str) -> str:
    """One run's gate page, relative to where the gate pages are mounted."""
    from urllib.parse import quote

    return f"/domains/{quote(domain, safe='')}/runs/{quote(run_id, safe='')}"


def airflow_dag_path(dag_id: str) -> str:
    """A DAG's page in the Airflow UI, relative to the UI's root."""
    from urllib.parse import quote

    return f"/dags/{quote(dag_id, safe='')}"


def airflow_run_path(dag_id: str, run_id: str) -> str:
    """A DAG run's page in the Airflow UI, relative to the UI's root."""
    from urllib.parse import quote

    return f"{airflow_dag_path(dag_id)}/runs/{quote(run_id, safe='')}"


def required_action_path(dag_id: str, run_id: str) -> str:
    """The review task's Required Action (Approve / Reject with a comment) in the Airflow UI."""
    return f"{airflow_run_path(dag_id, run_id)}/tasks/{REVIEW_STEP}/required_actions"


def run_prefix(domain: str, run_id: str, step: str) -> str:
    """`<domain>/<run_id>/<step>`: the prefix a step owns within one run."""
    for part in (domain, run_id, step):
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"{part!r}: not a valid domain, run id or step name")
    return f"{domain}/{run_id}/{step}"


def review_request_key(domain: str, run_id: str) -> str:
    return f"{run_prefix(domain, run_id, REVIEW_STEP)}/{REVIEW_REQUEST}"


def gate_report_key(domain: str, run_id: str) -> str:
    return f"{run_prefix(domain, run_id, GATE_STEP)}/{GATE_REPORT_JSON}"


def gate_report_html_key(domain: str, run_id: str) -> str:
    return f"{run_prefix(domain, run_id, GATE_STEP)}/{GATE_REPORT_HTML}"


def logical_date(ds: str) -> str:
    """`ds` if it is an ISO date (YYYY-MM-DD, zero-padded), else ValueError: partitions and `_latest.json`
    compare dates as text, so `2026-11-5` would sort after `2026-11-30`."""
    import re
    from datetime import date

    problem = ValueError(f"ds={ds!r}: not an ISO date YYYY-MM-DD (zero-padded, e.g. 2026-11-05)")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", ds):
        raise problem
    try:
        date.fromisoformat(ds)  # a real calendar day: no 2026-13-01
    except ValueError:
        raise problem from None
    return ds


def checked_run_id(run_id: str) -> str:
    """`run_id` if it is safe as a store key segment (Airflow's ids included), else ValueError."""
    import re

    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,249}", run_id) and ".." not in run_id:
        return run_id
    raise ValueError(f"run id {run_id!r}: use letters, digits and _ . : + - (no '..', no '/'), "
                     "e.g. manual__2026-11-05T10:00:00+00:00")


def _partition(domain: str, date_part: str, run_id: str) -> str:
    return f"domain={domain}/date={date_part}/run={run_id}"


def partition_prefix(domain: str, ds: str, run_id: str) -> str:
    """Where a run's batch is published (or quarantined) inside the destination."""
    return _partition(domain, logical_date(ds), run_id)


def partition_glob(domain: str, run_id: str) -> str:
    """A glob matching the run's partition under any date."""
    return _partition(domain, "*", run_id)


def manifests_by_run(keys: list[str]) -> dict[str, str]:
    """run id -> manifest key, for every committed partition among `keys` (a destination's listing)."""
    found = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == MANIFEST and parts[2].startswith("run="):
            found[parts[2].removeprefix("run=")] = key
    return found


def latest_key(domain: str) -> str:
    return f"domain={domain}/{LATEST_POINTER}"


def dag_id_for(domain: str) -> str:
    """The Airflow DAG id of a domain's pipeline."""
    return f"{DAG_ID_PREFIX}{domain}"
