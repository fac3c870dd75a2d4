"""`synth train`: train a domain's soft prompt on its target texts."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth_core.config import VARIANTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train (or resume) a soft prompt for a domain")
    parser.add_argument("domain_yaml", type=Path)
    parser.add_argument("--variant", choices=VARIANTS, help="override soft_prompt.variant")
    parser.add_argument("--steps", type=int, help="override soft_prompt.steps")
    parser.add_argument("--out", type=Path, help="output folder (default out/<domain>/<variant>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--warm-start", help="start from this checkpoint folder instead of a fresh prompt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.models import load_embedder, load_frozen_lm
    from synth_core.softprompt.training import train_soft_prompt
    from synth_core.sources import load_target_split

    config = load_domain(args.domain_yaml)
    overrides = {"soft_prompt.variant": args.variant, "soft_prompt.steps": args.steps,
                 "soft_prompt.warm_start": str(Path(args.warm_start).resolve()) if args.warm_start else None}
    config = config.with_overrides({k: v for k, v in overrides.items() if v is not None})
    out = args.out or Path("out") / config.name / config.soft_prompt.variant
    lm = load_frozen_lm(config.generator)
    result = train_soft_prompt(config, lm, load_embedder(config.generator), load_target_split(config), out,
                               resume=args.resume)
    emit({"command": "train", "domain": config.name, "model_load_seconds": round(lm.load_seconds, 3),
          **result.summary()})
    return 0
