"""`synth gate`: filter and score a synthetic batch against a domain's held-out targets; decide.

Exit codes: 0 pass, 3 review (a human decides), 4 fail, 2 bad config or inputs. The report
(JSON, HTML, dropped rows) is written to --out before the exit code says anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_BAD_INPUT = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gate", help="decide whether a synthetic batch is published (pass/review/fail)")
    parser.add_argument("domain_yaml", type=Path)
    parser.add_argument("--synthetic", type=Path, required=True, help="Parquet batch with a 'text' column")
    parser.add_argument("--out", type=Path, required=True, help="folder for gate_report.json/.html")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.layout import GATE_EXIT_CODES
    from synth_core.quality import GateInputError, read_synthetic_file, run_gate
    from synth_core.quality.gate import batch_provenance, finished_flags
    from synth_core.sources import load_target_split

    config = load_domain(args.domain_yaml)
    try:
        frame = read_synthetic_file(args.synthetic)
        provenance = batch_provenance(frame)
        targets = load_target_split(config)
        identities = {**provenance, "target_snapshot_hash": targets.snapshot_hash,
                      "generator": provenance.get("generator", config.generator.model)}
        report = run_gate(config, frame["text"].tolist(), targets.train, targets.heldout, identities=identities,
                          out_dir=args.out, finished=finished_flags(frame))
    except GateInputError as exc:
        logging.getLogger("synth.gate").error("%s", exc)
        emit({"command": "gate", "domain": config.name, "error": str(exc), "kind": "gate_input"})
        return EXIT_BAD_INPUT
    emit({"command": "gate", "domain": config.name, "report": str(args.out / "gate_report.json"),
          **report.summary()})
    return GATE_EXIT_CODES[report.decision]
