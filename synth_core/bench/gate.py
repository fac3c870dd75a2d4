"""`synth bench gate`: how often the gate is wrong, per seed domain and batch size.

Every batch goes through the whole gate (`run_gate`) with the domain's own settings, against the
domain's real train and held-out rows, at each batch size:

- false rejection: batches of **real** rows from the domain's separate test file (never trained on,
  never in the gate's held-out rows) that the gate does not pass (review or fail);
- false acceptance: batches made **bad** from those real rows that the gate passes, per degradation
  (DEGRADATIONS): rows of another seed domain, rows cut in half, sentences shuffled within rows,
  one real row repeated with small edits, and, with `--generated-rows`, the hard-prompt baseline's
  rows and the frozen generator's rows from the instruction alone (these two cost generation time).

Real batches are drawn without replacement from the test file, so at sizes above half the file they
overlap; the report says how many distinct rows were available. A degradation drawn from a pool
(another domain, generated rows) runs only at sizes its pool can fill.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synth_core.config import DomainConfig
from synth_core.quality.features import CachedFeatures, FeatureFn
from synth_core.sources import TargetSplit

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"(?<=[.!?])[ \t]+|\n+")


def cut_in_half(row: str, _rng: np.random.Generator) -> str:
    return row[: len(row) // 2]


def shuffle_sentences(row: str, rng: np.random.Generator) -> str:
    """The row's sentences and lines in another order, each separator kept in its place."""
    segments, separators = _SEGMENT.split(row), _SEGMENT.findall(row)
    if len(segments) < 2:
        return row
    order = np.roll(np.arange(len(segments)), int(rng.integers(1, len(segments))))  # never the identity
    shuffled = [segments[i] for i in order]
    return "".join(s + sep for s, sep in zip(shuffled, [*separators, ""], strict=True))


def edit_words(row: str, rng: np.random.Generator) -> str:
    """`row` with one word deleted and one word duplicated: a near copy."""
    words = row.split(" ")
    if len(words) < 3:
        return row + "."
    words.pop(int(rng.integers(len(words))))
    i = int(rng.integers(len(words)))
    return " ".join([*words[: i + 1], words[i], *words[i + 1:]])


@dataclass(frozen=True)
class Degradation:
    name: str
    describe: str


DEGRADATIONS = (
    Degradation("other_domain", "real rows of another seed domain"),
    Degradation("cut_in_half", "real rows cut after half their characters"),
    Degradation("shuffled_sentences", "real rows with their sentences and lines in another order"),
    Degradation("one_row_edited", "one real row repeated, each copy with a word deleted and one doubled"),
    Degradation("hard_prompt", "the hard-prompt (few-shot) baseline's rows"),
    Degradation("untrained", "the frozen generator's rows from the baseline's instruction alone: no examples, "
                             "no trained prompt"),
)
POOLED = ("other_domain", "hard_prompt", "untrained")  # drawn from a pool of rows, not made from real ones


def degraded_batch(name: str, real: list[str], rng: np.random.Generator, pools: dict[str, list[str]]) -> list[str]:
    """A bad batch as long as `real`: made from it, or drawn from a pool (other domain, generated rows)."""
    if name in pools:
        pool = pools[name]
        return [pool[i] for i in rng.choice(len(pool), size=len(real), replace=False)]
    if name == "one_row_edited":
        return [edit_words(real[0], rng) for _ in real]
    transform: Callable[[str, np.random.Generator], str] = {"cut_in_half": cut_in_half,
                                                            "shuffled_sentences": shuffle_sentences}[name]
    return [transform(row, rng) for row in real]


@dataclass(frozen=True)
class BenchPlan:
    sizes: tuple[int, ...]
    real_trials: int  # real batches per size
    bad_trials: int  # batches per degradation per size


def _gate_once(config: DomainConfig, batch: list[str], targets: TargetSplit, embed: FeatureFn) -> dict[str, Any]:
    from synth_core.quality.gate import run_gate

    report = run_gate(config, batch, targets.train, targets.heldout, embed=embed)
    summary = report.summary()
    keep = ("decision", "mauve", "mauve_interval", "mauve_reference", "precision", "recall", "kept")
    return {**{k: summary[k] for k in keep}, "reasons": report.reasons}


def _rate(outcomes: list[dict[str, Any]], decision_counts_as_error: Callable[[str], bool]) -> dict[str, Any]:
    errors = sum(decision_counts_as_error(o["decision"]) for o in outcomes)
    decisions = {d: sum(o["decision"] == d for o in outcomes) for d in ("pass", "review", "fail")}
    return {"trials": len(outcomes), "errors": errors, "rate": errors / len(outcomes) if outcomes else None,
            "decisions": decisions}


def domain_error_rates(config: DomainConfig, targets: TargetSplit, real_test: list[str], pools: dict[str, list[str]],
                       embed: FeatureFn, plan: BenchPlan, seed: int = 0,
                       progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """False rejections (real batches not passed) and false acceptances (bad batches passed) per size;
    `progress` gets the domain's results so far after each size (a long run keeps what it measured)."""
    embed = CachedFeatures(embed)
    sizes = [s for s in plan.sizes if s <= len(real_test)]
    by_size: dict[str, Any] = {}
    result = {"domain": config.name, "train_rows": len(targets.train), "heldout_rows": len(targets.heldout),
              "test_rows": len(real_test), "gate": {k: getattr(config.gate, k) for k in (
                  "mauve_fraction_of_reference", "review_band", "mauve_resamples", "mauve_confidence", "max_rows",
                  "max_length_ks", "min_precision", "min_recall", "min_valid_rate")}, "sizes": by_size}
    for size in sizes:
        gate_size = min(size, config.gate.max_rows, len(targets.train), len(targets.heldout))
        rng = np.random.default_rng([seed, size])
        started = time.perf_counter()
        real = [_gate_once(config, [real_test[i] for i in sorted(rng.choice(len(real_test), size, replace=False))],
                           targets, embed) for _ in range(plan.real_trials)]
        bad = {}
        for degradation in DEGRADATIONS:
            pool = pools.get(degradation.name)
            if (pool is None and degradation.name in POOLED) or (pool is not None and len(pool) < size):
                continue  # not generated, or too few rows for a batch of this size
            bad[degradation.name] = [
                _gate_once(config, degraded_batch(degradation.name, [real_test[i] for i in sorted(
                    rng.choice(len(real_test), size, replace=False))], rng, pools), targets, embed)
                for _ in range(plan.bad_trials)]
        by_size[str(size)] = {
            "batch_rows": size, "scored_rows": gate_size, "seconds": round(time.perf_counter() - started, 1),
            "false_rejection": {**_rate(real, lambda d: d != "pass"), "outcomes": real},
            "false_acceptance": {name: {**_rate(outcomes, lambda d: d == "pass"), "outcomes": outcomes}
                                 for name, outcomes in bad.items()}}
        log.info("%s, %d rows (%.0f s): false rejection %s, false acceptance %s", config.name, size,
                 by_size[str(size)]["seconds"], by_size[str(size)]["false_rejection"]["rate"],
                 {n: r["rate"] for n, r in by_size[str(size)]["false_acceptance"].items()})
        if progress:
            progress(result)
    return result


def generated_pools(config: DomainConfig, targets: TargetSplit, rows: int, out: Path) -> dict[str, list[str]]:
    """`rows` rows from the hard-prompt baseline and from its instruction alone (cached in `out`), less
    those cut at the token cap: the gate drops those first, so a pool holds what it would judge."""
    import pandas as pd

    from synth_core.bench.quality import load_bench_models, method_config, sample_method

    pools = {}
    for name, shots in (("hard_prompt", config.generation.baseline_shots), ("untrained", 0)):
        path = out / config.name / f"{name}.parquet"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            run_config = method_config(config, "hard-prompt-plain").with_overrides(
                {"generation.num_samples": rows, "generation.baseline_shots": shots})
            _lm, sampler_lm, embedder = load_bench_models(run_config)
            log.info("%s: generating %d %s rows", config.name, rows, name)
            sample_method(run_config, None, sampler_lm, embedder, targets, path)
        frame = pd.read_parquet(path)
        pools[name] = frame.loc[frame["finished"].astype(bool), "text"].astype(str).tolist()
        log.info("%s %s: %d of %d generated rows finished", config.name, name, len(pools[name]), len(frame))
    return pools


def markdown_table(results: dict[str, Any]) -> str:
    names = [d.name for d in DEGRADATIONS]
    lines = ["| domain | rows | false rejection | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for domain in results["domains"]:
        for size, row in domain["sizes"].items():
            accept = row["false_acceptance"]
            cells = [f"{accept[n]['errors']}/{accept[n]['trials']}" if n in accept else "—" for n in names]
            rejection = row["false_rejection"]
            lines.append(f"| {domain['domain']} | {size} (scored {row['scored_rows']}) | "
                         f"{rejection['errors']}/{rejection['trials']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    for domain in results["domains"]:
        sizes = [int(s) for s in domain["sizes"]]
        rejection = [row["false_rejection"]["rate"] for row in domain["sizes"].values()]
        acceptance = [max((r["rate"] for r in row["false_acceptance"].values()), default=0.0)
                      for row in domain["sizes"].values()]
        line, = axes.plot(sizes, rejection, marker="o", label=f"{domain['domain']}: false rejection")
        axes.plot(sizes, acceptance, marker="x", linestyle="--", color=line.get_color(),
                  label=f"{domain['domain']}: worst false acceptance")
    axes.set(xlabel="rows per batch", ylabel="error rate", ylim=(-0.02, 1.02), title="Gate error rates")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)


def run_gate_bench(domains: list[str], domains_dir: Path, out: Path, plan: BenchPlan,
                   generated_rows: int = 0, seed: int = 0) -> dict[str, Any]:
    """Every domain at each size; results.json, results.md and error_rates.png in `out`, rewritten after
    every size so that an interrupted run keeps what it measured. Another `seed` draws other batches, so
    runs with different seeds add up to more trials."""
    from synth_core.bench.quality import real_test_texts
    from synth_core.config import load_domain
    from synth_core.models import load_embedder
    from synth_core.sources import load_target_split

    configs = {d: load_domain(domains_dir / f"{d}.yaml") for d in domains}
    tests = {d: real_test_texts(c, rows=10_000) for d, c in configs.items()}
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    summary = {"plan": {"sizes": list(plan.sizes), "real_trials": plan.real_trials, "bad_trials": plan.bad_trials,
                        "generated_rows": generated_rows, "seed": seed},
               "degradations": {d.name: d.describe for d in DEGRADATIONS}, "domains": results}

    def write(partial: dict[str, Any] | None = None) -> None:
        summary.update(domains=[*results, *([partial] if partial else [])],
                       seconds=round(time.perf_counter() - started, 1))
        (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "results.md").write_text(markdown_table(summary))
        plot(summary, out / "error_rates.png")

    for i, (domain, config) in enumerate(configs.items()):
        other = domains[(i + 1) % len(domains)] if len(domains) > 1 else None
        targets = load_target_split(config)
        pools = {"other_domain": tests[other]} if other else {}
        if generated_rows:
            pools.update(generated_pools(config, targets, generated_rows, out))
        embedder = load_embedder(config.generator)
        measured = domain_error_rates(config, targets, tests[domain], pools, embedder.encode_cached, plan, seed,
                                      progress=lambda partial, other=other: write({**partial, "other_domain": other}))
        results.append({**measured, "other_domain": other})
    write()
    return summary
