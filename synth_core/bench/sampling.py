"""Sampling sweep: one method's rows at several (temperature, top-p) settings, scored on validation.

The issue's rule is to tune on the training and validation splits only: here MAUVE is taken against
the domain's held-out *validation* rows (never the test split, which `synth bench quality` keeps
for its final figures). A soft prompt is trained once at the chosen scale, exactly as the quality
benchmark trains it, unless a checkpoint is given; every setting then samples from that one prompt.
The hard-prompt baselines are swept the same way, so each method can be compared at its best setting.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from synth_core.bench.quality import (
    SCALES,
    SOFT_VARIANTS,
    bench_method_config,
    bench_targets,
    load_bench_models,
    sample_method,
    score_rows,
)
from synth_core.config import DomainConfig

log = logging.getLogger(__name__)


def parse_settings(temperatures: str, top_ps: str) -> list[tuple[float, float]]:
    """Every (temperature, top-p) pair of two comma-separated lists; temperature in (0, 2], top-p in (0, 1]."""
    def numbers(option: str, text: str) -> list[float]:
        try:
            return [float(part) for part in text.split(",")]
        except ValueError:
            raise ValueError(f"{option}={text!r} is not a comma-separated list of numbers") from None

    pairs = [(t, p) for t in numbers("--temperatures", temperatures) for p in numbers("--top-p", top_ps)]
    bad = [f"temperature={t}" for t, _ in pairs if not 0 < t <= 2] + [f"top_p={p}" for _, p in pairs if not 0 < p <= 1]
    if bad:
        raise ValueError(f"out of range: {', '.join(sorted(set(bad)))} (temperature in (0, 2], top_p in (0, 1])")
    return pairs


def run_sampling_sweep(config: DomainConfig, scale_name: str, method: str, settings: list[tuple[float, float]],
                       out_dir: Path, checkpoint: Path | None = None) -> dict[str, Any]:
    """Sample and score every setting of `method` (a soft-prompt variant or hard-prompt-plain/-chat);
    write results.json, results.md and sampling.png to `out_dir`."""
    import pandas as pd

    from synth_core.softprompt.checkpoint import is_checkpoint, load_checkpoint
    from synth_core.softprompt.training import CHECKPOINT_DIR, train_soft_prompt
    from synth_core.sources import load_target_split

    scale = SCALES[scale_name]
    soft = method in SOFT_VARIANTS
    if checkpoint is not None and not soft:
        raise ValueError(f"--checkpoint {checkpoint} is a soft prompt; method {method} samples without one")
    declared = config.checks
    config = bench_method_config(config, scale, method)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm, sampler_lm, embedder = load_bench_models(config)
    split = load_target_split(config)
    targets = bench_targets(split, scale)
    validation = split.heldout[: scale.test_rows]
    results: dict[str, Any] = {"domain": config.name, "scale": scale_name, "method": method,
                               "validation_rows": len(validation), "settings": []}
    if soft and checkpoint is None:
        checkpoint = out_dir / CHECKPOINT_DIR
        if not is_checkpoint(checkpoint):
            trained = train_soft_prompt(config, lm, embedder, targets, out_dir)
            results["training"] = trained.summary()
    if soft and (variant := load_checkpoint(checkpoint)[1].variant) != method:
        raise ValueError(f"soft prompt {checkpoint} is {variant}, not {method}: pass the matching --method, "
                         "or another --out")
    results["checkpoint"] = str(checkpoint) if soft else None
    for temperature, top_p in settings:
        name = f"t{temperature:g}-p{top_p:g}"
        path = out_dir / f"{name}.parquet"
        setting_config = config.with_overrides({"generation.temperature": temperature, "generation.top_p": top_p})
        row: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "rows": str(path)}
        if not path.exists():  # a sweep that died part-way resumes at the first setting it has no rows for
            started = time.perf_counter()
            sample_method(setting_config, checkpoint, sampler_lm, embedder, targets, path)
            row["generate_s"] = round(time.perf_counter() - started, 1)
        frame = pd.read_parquet(path)
        row["finished_fraction"] = round(float(frame["finished"].mean()), 3)
        metrics, _ = score_rows(setting_config, frame["text"].tolist(), targets.train, validation, embedder, {},
                                declared)
        row.update({**metrics, "length_ks": metrics.get("diversity", {}).get("length_ks")})
        results["settings"].append(row)
        log.info("%s %s: MAUVE %s, finished %.2f", config.name, name, row.get("mauve"), row["finished_fraction"])
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_table(results))
    plot_sweep(results, out_dir / "sampling.png")
    return results


def markdown_table(results: dict[str, Any]) -> str:
    lines = [f"### {results['domain']} {results['method']}: MAUVE against {results['validation_rows']} validation rows",
             "", "| temperature | top-p | MAUVE ± spread | reference | finished | length KS | duplicates |",
             "|---|---|---|---|---|---|---|"]
    for row in results["settings"]:
        if row.get("mauve") is None:
            lines.append(f"| {row['temperature']} | {row['top_p']} | {row.get('error', 'n/a')[:80]} | | | | |")
            continue
        lines.append(f"| {row['temperature']} | {row['top_p']} | {row['mauve']:.3f} ± {row['mauve_spread']:.3f} | "
                     f"{row['mauve_reference']:.3f} | {row['finished_fraction']:.2f} | {row['length_ks']:.3f} | "
                     f"{row['duplicate_rate']:.3f} |")
    return "\n".join(lines) + "\n"


def plot_sweep(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in results["settings"] if r.get("mauve") is not None]
    fig, axis = plt.subplots(figsize=(5, 3.5))
    for top_p in sorted({r["top_p"] for r in scored}):
        line = sorted((r for r in scored if r["top_p"] == top_p), key=lambda r: r["temperature"])
        axis.errorbar([r["temperature"] for r in line], [r["mauve"] for r in line],
                      yerr=[r["mauve_spread"] for r in line], marker="o", capsize=3, label=f"top-p {top_p:g}")
    if scored:
        axis.axhline(scored[0]["mauve_reference"], color="black", linestyle="--", label="real vs real")
    axis.set_xlabel("temperature")
    axis.set_ylabel("MAUVE vs validation")
    axis.set_ylim(0, 1.05)
    axis.set_title(f"{results['domain']} {results['method']}")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
