"""`synth publish`: copy the run's approved batch to the domain's destination, or quarantine it."""

from __future__ import annotations

import argparse

from synth_core.commands.refresh import add_run_arguments, open_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("publish", help="publish an approved batch (or quarantine a rejected one)")
    add_run_arguments(parser)
    parser.add_argument("--ds", required=True, type=iso_date,
                        help="logical date of the run, e.g. 2025-01-31 (the date= partition)")
    parser.add_argument("--approved-by", default=None, help="reviewer who approved a borderline gate result")
    parser.add_argument("--quarantine", action="store_true", help="quarantine the batch with its gate report")
    parser.add_argument("--reason", default="", help="why it is quarantined (default: the gate decision)")
    parser.add_argument("--roll-back", action="store_true",
                        help="make this earlier, already published run the domain's latest again; the run it "
                             "replaces is recorded as withdrawn and never becomes latest again")
    parser.add_argument("--by", default=None, help="who rolls back (recorded in _latest.json; default: the OS user)")
    parser.set_defaults(run=run)


def iso_date(text: str) -> str:
    """argparse type of `--ds`: an ISO date (YYYY-MM-DD), checked before anything runs."""
    from synth_core.layout import logical_date

    try:
        return logical_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import getpass
    import logging

    from synth_core.cli import emit
    from synth_core.publish import PublishFailed, PublishRefused, publish, quarantine, roll_back_latest
    from synth_core.store import StoreAccessError
    from synth_core.validation import ValidationFailed

    config, store = open_run(args)
    summary = {"command": "publish", "domain": config.name, "run_id": args.run_id, "ds": args.ds}
    try:
        if args.roll_back:
            summary.update(roll_back_latest(config, args.run_id, args.ds, by=args.by or getpass.getuser()))
        elif args.quarantine:
            summary.update(quarantine(config, args.run_id, store, args.ds, args.reason))
        else:
            summary.update(publish(config, args.run_id, store, args.ds, args.approved_by))
    except (PublishRefused, PublishFailed, StoreAccessError, ValidationFailed) as exc:
        logging.getLogger("synth").error("%s", exc)
        emit({**summary, "error": str(exc), "kind": type(exc).__name__})
        return 1
    emit(summary)
    return 0
