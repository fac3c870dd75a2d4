"""
One SoftSRV synthetic-data DAG per business domain: `synth__<domain>` for every YAML file under
`SYNTH_DOMAINS_DIR` (default `<repo>/domains`). Adding a domain means adding a YAML file.

Parsing only reads the YAML files: no model, store or database is touched until a task runs. A YAML
that does not load becomes a placeholder DAG of the same id, unscheduled, whose doc and only task
show the error (file, key and value); the other domains load as usual.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException

from synth_core.domains import DomainFile, discover_domains
from synth_core.notify import notify_failure, notify_review
from synth_dags import tasks
from synth_dags.assets import approved_asset
from synth_dags.review import GateReviewOperator

START = datetime(2025, 1, 1)
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": notify_failure,  # webhook from the Airflow connection `synth_alerts`, if set
}
# "off": every domain DAG is manual-only (`make ui` on a laptop: unpausing a weekly domain would otherwise
# start its full-size scheduled run at once, and a run triggered by hand would queue behind it)
SCHEDULES_ON = os.environ.get("SYNTH_SCHEDULES", "on") != "off"
# how long a gate review waits for a human before it defaults to Reject (a deployment setting:
# production waits a week, `make demo` a few minutes)
REVIEW_TIMEOUT = timedelta(minutes=float(os.environ.get("SYNTH_REVIEW_TIMEOUT_MINUTES", 7 * 24 * 60)))
_minutes = REVIEW_TIMEOUT.total_seconds() / 60
REVIEW_TIMEOUT_TEXT = (f"{_minutes:g} minutes" if _minutes < 120 else
                       f"{_minutes / 60:g} hours" if _minutes < 72 * 60 else f"{_minutes / 1440:g} days")

DOMAIN_DOC = """
# Synthetic data: `{name}`

{description}

Owner **{owner}**, schedule `{schedule}`, domain config `{path}`.

Refresh the governed targets (an immutable snapshot) → validate them (Great Expectations) → train
the SoftSRV soft prompt on the `gpu` queue (skipped, reusing the current checkpoint, when the
snapshot and the training settings are unchanged) → generate `{shards}` shard(s) on the `gpu` queue →
filter and gate the batch on calibrated MAUVE → `validate_synthetic` (Great Expectations on the kept
rows) → `route` sends the batch to one of:

* **publish** (gate pass): Parquet, manifest and dataset card, and the Asset `synth_{name}_approved`
  with the gate metrics in the event's `extra`;
* **review** (gate review): a reviewer answers in Required Actions; *Approve* → `publish`,
  *Reject* (or no answer in time) → `quarantine`;
* **quarantine** (gate fail, or a batch the synthetic validation rejected): the batch with its
  gate report and validation result.

`done` fails the run if anything failed.
Every task writes under the run id's own prefix, so re-running a run never publishes twice.
Trigger with params to override the sample count, the training steps or the seeds, or to force retraining.
"""

BROKEN_DOC = """
# Broken domain config: `{name}`

`{path}` does not load, so this domain has no pipeline until the file is fixed:

```
{error}
```
"""

REVIEW_BODY = """
{% set gate = ti.xcom_pull(task_ids="filter_and_gate") %}
The quality gate asks for a review of run `{{ run_id }}`: {{ gate.reasons | join("; ") }}.

{{ gate.kept }} of {{ gate.input }} generated rows survived the filters.
[Open the gate page of this run]({{ gate.gate_page }}) (criteria, plots, sample rows).

| metric | value | interval over rows |
| --- | --- | --- |
{% if gate.mauve_bar is number %}| mauve_bar (pass when MAUVE's margin over it is clear) | {{ "%.3f" | format(gate.mauve_bar) }} | |
{% endif %}{% for key in ["mauve", "mauve_reference"] %}| {{ key }} | {{ "%.3f" | format(gate[key]) if gate[key] is number else "—" }} | {{ "%.3f to %.3f" | format(*gate[key ~ "_interval"]) if gate[key ~ "_interval"] else "—" }} |
{% endfor %}{% for key in ["precision", "recall", "valid_rate", "synthetic_copy_rate", "reference_copy_rate", "duplicate_rate"] %}{% if gate[key] is number %}| {{ key }} | {{ "%.3f" | format(gate[key]) }} | |
{% endif %}{% endfor %}
*Approve* publishes the batch; *Reject* quarantines it. Say why in the comment: it is recorded with
the decision. Without an answer within {timeout} the batch is rejected.
"""


def domain_dag(domain: DomainFile) -> DAG:
    config, path = domain.config, str(domain.path)
    floor, floor_setting, _ = config.num_samples_floor()
    schedule = config.schedule if SCHEDULES_ON else None

    @dag(
        dag_id=domain.dag_id,
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["synth", *config.tags],
        default_args={**DEFAULT_ARGS, "owner": config.owner},
        description=config.description or None,
        doc_md=DOMAIN_DOC.format(name=config.name, description=config.description, owner=config.owner,
                                 schedule=schedule, path=path, shards=config.generation.shards),
        params={
            # `$comment` is shown in the refusal (the schema is printed with the validation error)
            "num_samples": Param(None, type=["null", "integer"], minimum=floor,
                                 description=f"override generation.num_samples ({config.generation.num_samples}); "
                                             f"at least {floor}",
                                 **{"$comment": f"{floor_setting}={floor}: fewer never publish"}),
            "steps": Param(None, type=["null", "integer"], minimum=1, description="override soft_prompt.steps"),
            "seed": Param(None, type=["null", "integer"], minimum=0,
                          description="override soft_prompt.seed and generation.seed"),
            "force_retrain": Param(False, type="boolean", description="train even if nothing changed"),
        },
    )
    def synth_domain() -> None:
        review = GateReviewOperator(
            task_id="review", subject=f"Publish the {config.name} batch of run {{{{ run_id }}}}?",
            body=REVIEW_BODY.replace("{timeout}", REVIEW_TIMEOUT_TEXT),
            response_timeout=REVIEW_TIMEOUT, publish_task="publish", quarantine_task="quarantine",
            notifiers=[notify_review])
        trained = tasks.train_soft_prompt(path)
        tasks.refresh_targets(path) >> tasks.validate_targets(path) >> trained
        shard_count = config.generation.shards  # fixed at parse time: the mapping and each slice agree
        shards = tasks.generate.partial(config_path=path, shards=shard_count, trained=trained).expand(
            shard=list(range(shard_count)))
        gate = tasks.filter_and_gate(path)
        validation = tasks.validate_synthetic(path)
        shards >> gate >> validation
        published = tasks.publish.override(outlets=[approved_asset(config.name)])(path, config.name, gate)
        quarantined = tasks.quarantine(path, gate, validation)
        tasks.route(path, gate, validation, REVIEW_TIMEOUT.total_seconds()) >> [published, review, quarantined]
        review >> [published, quarantined]  # Approve → publish, Reject → quarantine
        # the only leaf: fails the run when anything upstream failed (a skipped branch would hide it)
        [published, quarantined] >> EmptyOperator(task_id="done", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)

    return synth_domain()


def broken_domain_dag(domain: DomainFile) -> DAG:
    @dag(
        dag_id=domain.dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        tags=["synth", "broken-config"],
        default_args={**DEFAULT_ARGS, "owner": "data-platform"},
        description=f"BROKEN CONFIG: {domain.error}"[:200],
        doc_md=BROKEN_DOC.format(name=domain.name, path=domain.path, error=domain.error),
    )
    def synth_broken_domain() -> None:
        @task
        def config_error() -> None:
            raise AirflowFailException(domain.error)

        config_error()

    return synth_broken_domain()


for _domain in discover_domains():
    if _domain.config:
        domain_dag(_domain)
    else:
        broken_domain_dag(_domain)
