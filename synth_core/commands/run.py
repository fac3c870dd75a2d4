"""`synth run`: every pipeline step in order on this machine, as one DAG run would, then one JSON summary.

Without Airflow there is no reviewer, so a `review` decision is quarantined like a `fail`. Exit codes:
0 published, 3 review (quarantined), 4 fail (quarantined), 1 a deterministic step failure, 2 bad config.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from synth_core.commands.publish import iso_date
from synth_core.commands.refresh import run_id_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="refresh, validate, train, generate, gate and publish one domain")
    parser.add_argument("domain_yaml", type=Path, help="the domain's YAML file")
    parser.add_argument("--run-id", default=None, type=run_id_argument, help="artifact prefix of the run (default: cli__<UTC time>); "
                                                       "re-running a run id never publishes twice")
    parser.add_argument("--ds", default=None, type=iso_date,
                        help="logical date (YYYY-MM-DD), the date= partition (default: today, UTC)")
    parser.add_argument("--force-retrain", action="store_true", help="train even if snapshot and settings are "
                                                                     "unchanged")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.layout import GATE_EXIT_CODES
    from synth_core.pipeline import RunContext, run_all
    from synth_core.publish import PublishFailed, PublishRefused
    from synth_core.quality.gate import GateInputError
    from synth_core.store import StoreAccessError
    from synth_core.validation import ValidationFailed

    config = load_domain(args.domain_yaml)
    now = datetime.now(UTC)
    run_ctx = RunContext(run_id=args.run_id or f"cli__{now:%Y%m%dT%H%M%S}", ds=args.ds or f"{now:%Y-%m-%d}",
                         force_retrain=args.force_retrain)
    summary = {"command": "run", "domain": config.name, "run_id": run_ctx.run_id, "ds": run_ctx.ds}
    try:
        summary.update(run_all(config, run_ctx))
    except (ValidationFailed, GateInputError, PublishRefused, PublishFailed, StoreAccessError) as exc:
        logging.getLogger("synth").error("%s", exc)
        emit({**summary, "error": str(exc), "kind": type(exc).__name__})
        return 1
    emit(summary)
    if not summary["validate_synthetic"]["success"]:
        return GATE_EXIT_CODES["fail"]  # quarantined by the synthetic validation, whatever the gate said
    return GATE_EXIT_CODES[summary["gate"]["decision"]]
