"""The domain DAG's tasks, one per pipeline step, in the order a run meets them.

Each takes the domain YAML's path (the DAG passes it) and calls its synth_core step through
`run_step`; heavy imports stay inside the task bodies, so parsing the DAG folder stays cheap.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TriggerRule, get_current_context, task

from synth_core.routing import REVIEW, next_step, quarantine_reason
from synth_dags.assets import approved_asset
from synth_dags.steps import gate_metrics, rejection, review_comment, reviewer, run_step

GPU = {"queue": "gpu", "pool": "gpu"}


@task
def refresh_targets(config_path: str) -> dict:
    from synth_core.pipeline import refresh_targets

    return run_step(refresh_targets, config_path, first=True)


@task
def validate_targets(config_path: str) -> dict:
    from synth_core.pipeline import validate_targets

    return run_step(validate_targets, config_path)


@task(**GPU, execution_timeout=timedelta(hours=6))
def train_soft_prompt(config_path: str) -> dict:
    from synth_core.pipeline import train_soft_prompt

    return run_step(train_soft_prompt, config_path)


@task(**GPU, execution_timeout=timedelta(hours=3))
def generate(config_path: str, shard: int, shards: int, trained: dict) -> dict:
    from synth_core.pipeline import generate_shard

    return run_step(generate_shard, config_path, shard=shard, shards=shards,
                    checkpoint_prefix=trained["checkpoint_prefix"])


@task(execution_timeout=timedelta(hours=1))
def filter_and_gate(config_path: str) -> dict:
    from synth_core.pipeline import filter_and_gate

    return run_step(filter_and_gate, config_path)


@task
def validate_synthetic(config_path: str) -> dict:
    from synth_core.pipeline import validate_synthetic_batch

    return run_step(validate_synthetic_batch, config_path)


@task.branch
def route(config_path: str, gate: dict, validation: dict, review_timeout_s: float) -> str:
    """publish, review or quarantine (see `next_step`); a batch sent to review is recorded with its deadline."""
    from synth_core.pipeline import request_review

    chosen = next_step(gate, validation)
    if chosen == REVIEW:
        run_step(request_review, config_path, timeout_s=review_timeout_s)
    return chosen


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def publish(config_path: str, domain: str, gate: dict) -> dict:
    """Publish; the gate's figures and the approver go on the domain's Asset event (the DAG sets the outlet)."""
    from synth_core.pipeline import publish_batch

    context = get_current_context()
    answer = context["ti"].xcom_pull(task_ids="review", key="reviewer")
    approved_by = reviewer(answer)
    published = run_step(publish_batch, config_path, approved_by=approved_by, review_comment=review_comment(answer))
    context["outlet_events"][approved_asset(domain)].extra = {
        "domain": domain, "run_id": context["run_id"], "uri": published["uri"],
        "manifest_sha256": published["manifest_sha256"], "rows": published["rows"],
        "published": published["published"], "approved_by": approved_by, "review_comment": review_comment(answer),
        "decision": gate["decision"], "metrics": gate_metrics(gate)}
    return published


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def quarantine(config_path: str, gate: dict, validation: dict) -> dict:
    from synth_core.pipeline import quarantine_batch

    answer = get_current_context()["ti"].xcom_pull(task_ids="review", key="reviewer")
    return run_step(quarantine_batch, config_path, reason=quarantine_reason(gate, validation, review=rejection(answer)))
