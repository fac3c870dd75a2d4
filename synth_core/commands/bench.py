"""`synth bench`: throughput (generator and trainer against plain transformers) and quality benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print machine-readable results")
    kinds = parser.add_subparsers(dest="bench", required=True)
    throughput = kinds.add_parser("throughput", help="generation/training speed against plain transformers")
    throughput.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    throughput.add_argument("--new-tokens", type=int, default=64)
    throughput.add_argument("--model", default="embedded:smollm2-135m")
    throughput.add_argument("--repeats", type=int, default=3, help="best of N interleaved runs per figure")
    throughput.set_defaults(run=run_throughput)
    quality = kinds.add_parser("quality", help="SoftSRV variants against the hard-prompt baseline, per domain")
    quality.add_argument("--domains", default="gsm8k,mbpp,boolq", help="comma-separated seed domains")
    quality.add_argument("--scale", choices=["smoke", "small", "full"], default="smoke")
    quality.add_argument("--methods", type=_methods, default="", help="comma-separated subset of "
                         "hard-prompt-plain, hard-prompt-chat, nsp, mpk, mc (default: all)")
    quality.add_argument("--reuse", action="store_true", help="score rows (and soft prompts) an earlier run left "
                         "in --out again instead of re-training and re-generating them")
    quality.add_argument("--domains-dir", type=Path, default=Path("domains"))
    quality.add_argument("--out", type=Path, required=True)
    quality.set_defaults(run=run_quality)


def run_throughput(args: argparse.Namespace) -> int:
    from synth_core.bench.throughput import run_throughput
    from synth_core.cli import emit

    batches = tuple(int(b) for b in args.batches.split(","))
    emit({"bench": "throughput", **run_throughput(batches, args.new_tokens, model=args.model, repeats=args.repeats)})
    return 0


def _methods(text: str) -> tuple[str, ...]:
    from synth_core.bench.quality import parse_methods

    try:
        return parse_methods(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_quality(args: argparse.Namespace) -> int:
    from synth_core.bench.quality import run_quality
    from synth_core.cli import emit

    results = run_quality(args.domains.split(","), args.scale, args.out, args.domains_dir, args.methods,
                          args.reuse)
    summary = {d["domain"]: {m: row.get("mauve") for m, row in d["methods"].items()} for d in results["domains"]}
    emit({"bench": "quality", "scale": args.scale, "out": str(args.out), "seconds": results["seconds"],
          "mauve": summary})
    return 0
