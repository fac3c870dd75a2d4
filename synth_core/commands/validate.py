"""`synth validate`: Great Expectations checks on the run's target snapshot or synthetic batch."""

from __future__ import annotations

import argparse

from synth_core.commands.refresh import add_run_arguments, open_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="validate the target snapshot or the synthetic batch")
    add_run_arguments(parser)
    parser.add_argument("--batch", choices=("targets", "synthetic"), default="targets")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from synth_core.cli import emit
    from synth_core.validation import ValidationFailed, validate_synthetic, validate_targets

    config, store = open_run(args)
    step = validate_targets if args.batch == "targets" else validate_synthetic
    summary = {"command": "validate", "domain": config.name, "run_id": args.run_id}
    try:
        emit({**summary, **step(config, args.run_id, store)})
    except ValidationFailed as exc:
        logging.getLogger("synth").error("%s", exc)
        emit({**summary, "batch": args.batch, "success": False, "kind": "validation", "failed": exc.failures,
              "result_uri": exc.result_uri})
        return 1
    return 0
