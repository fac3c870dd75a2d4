"""`synth refresh`: take the run's immutable target snapshot from the domain's governed source.

Also home of the arguments every store-backed step shares (domain YAML, `--run-id`, `--store`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run_id_argument(text: str) -> str:
    """argparse type of `--run-id`: a safe store key segment, checked before anything runs."""
    from synth_core.layout import checked_run_id

    try:
        return checked_run_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain_yaml", type=Path, help="the domain's YAML file")
    parser.add_argument("--run-id", required=True, type=run_id_argument,
                        help="run id: every artifact goes under <domain>/<run_id>/")
    parser.add_argument("--store", default="", help="artifact store root (default: the domain's store.uri)")


def open_run(args: argparse.Namespace) -> tuple[Any, Any]:
    """(DomainConfig, ArtifactStore) for the parsed arguments."""
    from synth_core.config import load_domain
    from synth_core.store import open_store

    config = load_domain(args.domain_yaml)
    return config, open_store(args.store or config.store.uri, config.store.conn_id)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("refresh", help="snapshot the governed target data with lineage and a split")
    add_run_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from synth_core.cli import emit
    from synth_core.snapshot import refresh

    config, store = open_run(args)
    emit({"command": "refresh", "domain": config.name, "run_id": args.run_id, **refresh(config, args.run_id, store)})
    return 0
