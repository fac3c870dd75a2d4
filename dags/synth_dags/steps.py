"""Run one synth_core pipeline step inside an Airflow task.

A task body imports its step and calls `run_step(step, config_path, ...)`. That loads the domain
YAML with the run's overrides (the DAG params), builds the run context from the task context (the
Airflow run id is the artifact prefix, so every step is idempotent per run) and opens the domain's
store. Deterministic errors (bad config, failed validation, a gate that cannot score, a refused
publish, rejected credentials) become `AirflowFailException`, which fails the task without retry;
anything else (S3 or worker trouble) is left to the task's retries with exponential back-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from synth_core.config import DomainConfig

log = logging.getLogger(__name__)

# DAG param -> dotted config keys it overrides
PARAM_OVERRIDES = {"num_samples": ("generation.num_samples",), "steps": ("soft_prompt.steps",),
                   "seed": ("soft_prompt.seed", "generation.seed")}


def run_config(config_path: str, params: Mapping[str, Any]) -> DomainConfig:
    """The domain's config with the run's non-empty overrides applied, refused if it could never publish."""
    from synth_core.config import load_domain
    from synth_core.pipeline import check_feasible

    overrides = {key: params[name] for name, keys in PARAM_OVERRIDES.items() if params.get(name) is not None
                 for key in keys}
    config = load_domain(config_path)
    config = config.with_overrides(overrides) if overrides else config
    check_feasible(config)
    return config


def run_step(step: Callable[..., dict[str, Any]], config_path: str, *, first: bool = False,
             **kwargs: Any) -> dict[str, Any]:
    """`step(config, run, store, **kwargs)` for the current task's run; its small dict becomes the XCom.

    The run's first step (`first=True`) resolves the config from the YAML and the DAG params and
    records it; every later step runs with that recorded config.
    """
    from synth_core.config import ConfigError
    from synth_core.pipeline import RunContext, domain_store, recorded_run_config
    from synth_core.publish import PublishRefused
    from synth_core.quality.gate import GateInputError
    from synth_core.store import StoreAccessError
    from synth_core.validation import ValidationFailed

    context = get_current_context()
    dag_run = context["dag_run"]
    ds = (dag_run.logical_date or dag_run.run_after).strftime("%Y-%m-%d")
    try:
        config = run_config(config_path, context["params"])
        run = RunContext(run_id=context["run_id"], ds=ds, force_retrain=bool(context["params"].get("force_retrain")))
        store = domain_store(config)
        if not first:
            config = recorded_run_config(config, run, store)
        result = step(config, run, store, **kwargs)
    except (ConfigError, ValidationFailed, GateInputError, PublishRefused, StoreAccessError) as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    log_key_figures(step.__name__, result)
    return result


def log_key_figures(step_name: str, result: Mapping[str, Any]) -> None:
    from synth_core.pipeline import key_figures

    log.info("%s", key_figures(step_name, result))


def gate_metrics(gate: Mapping[str, Any]) -> dict[str, Any]:
    """The gate step's figures (counts, rates, MAUVE) without its decision, reasons and report link."""
    return {k: v for k, v in gate.items() if k not in ("decision", "reasons", "report_uri")}


def review_comment(approval: Mapping[str, Any] | None) -> str | None:
    """The reviewer's comment from the `reviewer` XCom, or None when there was none."""
    return (approval or {}).get("comment") or None


def rejection(approval: Mapping[str, Any] | None) -> str:
    """How a reviewed batch came to be quarantined, for the quarantine reason."""
    if not approval:
        return "the review timed out (default: Reject)"
    comment = review_comment(approval)
    return f"rejected on review by {reviewer(approval)}" + (f": {comment}" if comment else "")


def reviewer(approval: Mapping[str, Any] | None) -> str | None:
    """Who answered the review (the `reviewer` XCom of `GateReviewOperator`), or None when there was no review."""
    if not approval:
        return None
    user = approval.get("responded_by_user") or {}
    return user.get("name") or user.get("id") or "timeout default"
