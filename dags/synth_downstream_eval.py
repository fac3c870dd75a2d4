"""Example consumer of the published synthetic data: a small downstream fine-tuning evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetAny, Param, dag, get_current_context, task

from synth_core.domains import discover_domains
from synth_dags.assets import approved_asset

DOMAINS = {domain.name: str(domain.path) for domain in discover_domains() if domain.config}


@dag(
    schedule=AssetAny(*(approved_asset(name) for name in DOMAINS)) if DOMAINS else None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["synth", "downstream", "example"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": 2.0, "execution_timeout": timedelta(hours=1)},
    params={
        "domain": Param(None, type=["null", "string"], description="evaluate this domain (manual runs)"),
        "rows": Param(64, type="integer", minimum=1, description="published rows to fine-tune on"),
        "steps": Param(20, type="integer", minimum=1, description="LoRA fine-tuning steps"),
    },
)
def synth_downstream_eval() -> None:
    """
    ### Example consumer of published synthetic data

    Runs whenever any domain publishes an approved batch (the `synth_<domain>_approved` Assets). For
    each domain in the triggering Asset events it follows the domain's `_latest.json` pointer to the
    newest manifest, LoRA fine-tunes the domain's generator on a few published rows and reports the
    held-out loss before and after: a small-scale stand-in for the downstream fine-tuning a real
    consumer runs. Trigger it by hand with the `domain` param to evaluate one domain's latest batch.
    """

    @task
    def published_domains() -> list[str]:
        """The domains whose Asset events triggered this run, else the `domain` param."""
        context = get_current_context()
        names = {event.extra["domain"] for events in context["triggering_asset_events"].values() for event in events}
        return sorted(names or {context["params"]["domain"]} - {None})

    @task
    def evaluate(domain: str) -> dict:
        from synth_core.config import load_domain
        from synth_core.downstream import FinetuneSettings, evaluate_latest

        params = get_current_context()["params"]
        return evaluate_latest(load_domain(DOMAINS[domain]),
                               FinetuneSettings(rows=params["rows"], steps=params["steps"]))

    evaluate.expand(domain=published_domains())


synth_downstream_eval()
