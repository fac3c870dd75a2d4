"""`synth bench`: throughput (generator and trainer against plain transformers), quality, the gate's
leakage check and error rates, PII detection, and the per-process thread budget."""

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
    throughput.add_argument("--training-domain", type=Path, default=Path("domains/gsm8k.yaml"),
                            help="domain whose target rows the random vs length-pooled training batches use")
    throughput.add_argument("--training-steps", type=int, default=16)
    throughput.add_argument("--attention-columns", type=int, default=320,
                            help="cached tokens for the decode step's attention comparison (a product-length row)")
    throughput.set_defaults(run=run_throughput)
    quality = kinds.add_parser("quality", help="SoftSRV variants against the hard-prompt baseline, per domain")
    quality.add_argument("--domains", default="gsm8k,mbpp,boolq", help="comma-separated seed domains")
    quality.add_argument("--scale", choices=["smoke", "small", "full"], default="smoke")
    quality.add_argument("--methods", type=_methods, default="", help="comma-separated subset of "
                         "hard-prompt-plain, hard-prompt-chat, nsp, mpk, mc (default: all)")
    quality.add_argument("--reuse", action="store_true", help="score rows (and soft prompts) an earlier run left "
                         "in --out again instead of re-training and re-generating them; a soft prompt whose rows "
                         "were deleted samples new ones without re-training")
    quality.add_argument("--downstream-subsets", type=_positive, default=1, help="LoRA fine-tune on this many disjoint "
                         "row subsets per method and report the loss's mean and spread (default: one)")
    quality.add_argument("--domains-dir", type=Path, default=Path("domains"))
    quality.add_argument("--seed", type=int, default=None, help="training and sampling seed for every domain "
                         "(default: each YAML's own); runs with several seeds show the spread one run hides")
    quality.add_argument("--out", type=Path, required=True)
    quality.set_defaults(run=run_quality)
    sampling = kinds.add_parser("sampling", help="one method's rows per (temperature, top-p), MAUVE against the "
                                "validation split (tuning never reads the test split)")
    sampling.add_argument("domain_yaml", type=Path)
    sampling.add_argument("--scale", choices=["smoke", "small", "full"], default="smoke")
    sampling.add_argument("--method", choices=["mc", "mpk", "nsp", "hard-prompt-plain", "hard-prompt-chat"],
                          default="mc", help="a soft-prompt variant or a hard-prompt baseline")
    sampling.add_argument("--temperatures", default="1.0,0.85,0.7", help="comma-separated")
    sampling.add_argument("--top-p", default="0.95", help="comma-separated; every pair with --temperatures is run")
    sampling.add_argument("--checkpoint", type=Path, help="soft prompt to sample from (default: train one at "
                          "--scale into --out, or reuse the one an earlier sweep left there)")
    sampling.add_argument("--out", type=Path, required=True)
    sampling.set_defaults(run=run_sampling)
    leakage = kinds.add_parser("leakage", help="the gate's leakage criterion on real test rows (must pass) and on "
                               "verbatim, upper-cased and 10%% planted copies of train rows (must fail)")
    leakage.add_argument("--domains", default="boolq,gsm8k,mbpp", help="comma-separated seed domains")
    leakage.add_argument("--domains-dir", type=Path, default=Path("domains"))
    leakage.add_argument("--out", type=Path, required=True)
    leakage.set_defaults(run=run_leakage)
    gate = kinds.add_parser("gate", help="the gate's error rates: real test batches it does not pass, and bad "
                            "batches (another domain, cut, shuffled, near copies, baselines) it passes")
    gate.add_argument("--domains", default="gsm8k,mbpp,boolq", help="comma-separated seed domains")
    gate.add_argument("--sizes", default="100,200,300", help="comma-separated batch sizes (rows)")
    gate.add_argument("--real-trials", type=_positive, default=10, help="real batches per size")
    gate.add_argument("--bad-trials", type=_positive, default=3, help="batches per degradation per size")
    gate.add_argument("--generated-rows", type=int, default=0, help="rows to generate for the hard-prompt and "
                      "instruction-only degradations (0: skip them; they cost generation time)")
    gate.add_argument("--seed", type=int, default=0, help="draws the batches; runs with other seeds add trials")
    gate.add_argument("--domains-dir", type=Path, default=Path("domains"))
    gate.add_argument("--out", type=Path, required=True)
    gate.set_defaults(run=run_gate_bench)
    pii = kinds.add_parser("pii", help="PII detection (Presidio) against the regex table it replaced: precision and "
                           "recall on a labelled set, and the share of real target rows flagged")
    pii.add_argument("--domains", default="gsm8k,mbpp,boolq", help="comma-separated seed domains")
    pii.add_argument("--domains-dir", type=Path, default=Path("domains"))
    pii.set_defaults(run=run_pii)
    threads = kinds.add_parser("threads", help="two training processes at once, with and without the per-process "
                               "thread budget, against one alone")
    threads.add_argument("--model", default="embedded:smollm2-135m")
    threads.add_argument("--steps", type=_positive, default=3, help="timed calls of the training-step figure")
    threads.add_argument("--lead-s", type=float, default=30.0, help="seconds for the workers to load before timing")
    threads.set_defaults(run=run_threads)


def run_throughput(args: argparse.Namespace) -> int:
    from synth_core.bench.quality import SCALES
    from synth_core.bench.throughput import run_throughput
    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.sources import load_target_split

    batches = tuple(int(b) for b in args.batches.split(","))
    texts = load_target_split(load_domain(args.training_domain)).train[: SCALES["small"].target_rows]
    emit({"bench": "throughput", **run_throughput(batches, args.new_tokens, model=args.model, repeats=args.repeats,
                                                  training_texts=texts, training_steps=args.training_steps,
                                                  attention_columns=args.attention_columns)})
    return 0


def run_threads(args: argparse.Namespace) -> int:
    from synth_core.bench.threads import run_threads
    from synth_core.cli import emit

    emit({"bench": "threads", **run_threads(args.model, args.steps, args.lead_s)})
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


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
                          args.reuse, args.downstream_subsets, args.seed)
    summary = {d["domain"]: {m: row.get("mauve") for m, row in d["methods"].items()} for d in results["domains"]}
    emit({"bench": "quality", "scale": args.scale, "out": str(args.out), "seconds": results["seconds"],
          "mauve": summary})
    return 0


def run_sampling(args: argparse.Namespace) -> int:
    from synth_core.bench.sampling import parse_settings, run_sampling_sweep
    from synth_core.cli import emit
    from synth_core.config import load_domain

    try:
        results = run_sampling_sweep(load_domain(args.domain_yaml), args.scale, args.method,
                                     parse_settings(args.temperatures, args.top_p), args.out, args.checkpoint)
    except ValueError as exc:
        raise SystemExit(f"synth bench sampling: {exc}") from None
    emit({"bench": "sampling", "domain": results["domain"], "method": results["method"], "out": str(args.out),
          "mauve": {f"t{r['temperature']:g}-p{r['top_p']:g}": r.get("mauve") for r in results["settings"]}})
    return 0


def run_leakage(args: argparse.Namespace) -> int:
    from synth_core.bench.leakage import run_leakage_bench
    from synth_core.cli import emit

    results = run_leakage_bench(args.domains.split(","), args.domains_dir, args.out)
    emit({"bench": "leakage", "out": str(args.out), "all_as_expected": results["all_as_expected"],
          "outcomes": {d["domain"]: {name: b["outcome"] for name, b in d["batches"].items()}
                       for d in results["domains"]}})
    return 0 if results["all_as_expected"] else 1


def run_pii(args: argparse.Namespace) -> int:
    from synth_core.bench.pii import run_pii_bench
    from synth_core.cli import emit

    emit({"bench": "pii", **run_pii_bench([args.domains_dir / f"{d}.yaml" for d in args.domains.split(",")])})
    return 0


def run_gate_bench(args: argparse.Namespace) -> int:
    from synth_core.bench.gate import BenchPlan, run_gate_bench
    from synth_core.cli import emit

    plan = BenchPlan(tuple(_positive(s) for s in args.sizes.split(",")), args.real_trials, args.bad_trials)
    results = run_gate_bench(args.domains.split(","), args.domains_dir, args.out, plan, args.generated_rows,
                             args.seed)
    emit({"bench": "gate", "out": str(args.out), "seconds": results["seconds"],
          "false_rejection": {d["domain"]: {size: row["false_rejection"]["rate"] for size, row in d["sizes"].items()}
                              for d in results["domains"]},
          "false_acceptance": {d["domain"]: {size: {n: r["rate"] for n, r in row["false_acceptance"].items()}
                                             for size, row in d["sizes"].items()} for d in results["domains"]}})
    return 0
