"""`synth bench`: throughput (generator and trainer against plain transformers) and quality benchmarks."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print machine-readable results")
    kinds = parser.add_subparsers(dest="bench", required=True)
    throughput = kinds.add_parser("throughput", help="generation/training speed against plain transformers")
    throughput.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    throughput.add_argument("--new-tokens", type=int, default=64)
    throughput.add_argument("--model", default="embedded:smollm2-135m")
    throughput.set_defaults(run=run_throughput)


def run_throughput(args: argparse.Namespace) -> int:
    from synth_core.bench.throughput import run_throughput
    from synth_core.cli import emit

    batches = tuple(int(b) for b in args.batches.split(","))
    emit({"bench": "throughput", **run_throughput(batches, args.new_tokens, model=args.model)})
    return 0
