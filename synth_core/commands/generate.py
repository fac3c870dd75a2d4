"""`synth generate`: sample synthetic rows from a soft-prompt checkpoint or the hard-prompt baseline."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("generate", help="generate synthetic rows to Parquet")
    parser.add_argument("domain_yaml", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="soft-prompt checkpoint folder")
    source.add_argument("--baseline", choices=["hard-prompt"], help="the few-shot hard-prompt baseline")
    parser.add_argument("--baseline-style", choices=["plain", "chat"], help="override generation.baseline_style")
    parser.add_argument("--num-samples", type=int, help="override generation.num_samples (num_samples x "
                        "generation.oversample rows are written: `synth gate` selects num_samples of them)")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet file")
    parser.add_argument("--seed", type=int, help="override generation.seed")
    parser.add_argument("--shard", default="0/1", help="I/N: produce the I-th of N disjoint parts")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=_override, metavar="KEY=VALUE",
                        help="override any setting, e.g. --set generation.temperature=0.7 (repeatable)")
    parser.set_defaults(run=run)


def _override(text: str) -> tuple[str, object]:
    from synth_core.config import parse_override

    try:
        return parse_override(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.generation.auto_decoding import settle_decoding
    from synth_core.generation.factory import build_generator
    from synth_core.generation.run import generate_to_parquet
    from synth_core.generation.sharding import parse_shard
    from synth_core.models import load_embedder
    from synth_core.sources import load_target_split

    shard, shards = parse_shard(args.shard)
    config = load_domain(args.domain_yaml)
    overrides = {"generation.num_samples": args.num_samples, "generation.seed": args.seed,
                 "generation.baseline_style": args.baseline_style}
    config = config.with_overrides({**{k: v for k, v in overrides.items() if v is not None}, **dict(args.overrides)})
    targets = load_target_split(config)
    embedder = load_embedder(config.generator)
    generator, lm = build_generator(config, checkpoint_dir=args.checkpoint, embedder=embedder, targets=targets)
    decoding = settle_decoding(generator, config, targets.validation, embedder.encode_cached)
    settings = config.generation
    result = generate_to_parquet(generator, args.out, num_samples=settings.candidate_rows,
                                 batch_size=settings.batch_size, seed=settings.seed, shard=shard, shards=shards,
                                 generator_name=lm.identity.name)
    emit({"command": "generate", "domain": config.name, **result.summary(), "decoding": decoding})
    return 0
