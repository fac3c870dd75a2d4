"""Quality benchmark: SoftSRV (`nsp`, `mpk`, `mc`) against the hard-prompt baseline, per seed domain.

For each domain, with the same frozen generator, the same target training rows and the same number
of generated rows, every method is scored the way the SoftSRV paper does it:
- MAUVE against the real *test* split (mean ± spread over k-means seeds), with the real-vs-real
  reference (train vs test) at the same sample sizes; leakage, duplicate rate, diversity, length KS;
- downstream usefulness: LoRA fine-tune the generator on N rows of each method, loss on real test rows,
  against N real training rows (upper reference) and no fine-tuning (lower reference);
- the pass rate of each of the domain's row checks (quality/checks.py, as the gate runs them) on all
  generated rows, and the wall time of every stage.
The hard-prompt baseline is run in both styles (plain few-shot continuation and chat template).
Tuning happens on train/validation only; the test split is used for these final figures alone.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth_core.config import CheckConfig, DomainConfig, load_domain
from synth_core.progress import Progress

if TYPE_CHECKING:
    from synth_core.sources import TargetSplit

log = logging.getLogger(__name__)
SOFT_VARIANTS = ("nsp", "mpk", "mc")
BASELINE_STYLES = ("plain", "chat")
METHODS = tuple(f"hard-prompt-{s}" for s in BASELINE_STYLES) + SOFT_VARIANTS


@dataclass(frozen=True, kw_only=True)
class Scale:
    model: str
    target_rows: int  # training rows the prompts (and the few-shot baseline) may use
    test_rows: int  # real test rows for MAUVE and downstream loss
    steps: int
    num_samples: int
    # token limits (training length, generation cap) forced on every domain; None: the domain's own (auto by
    # default: the targets' covering length). Below the targets' lengths rows are cut, which biases the batch.
    max_length: int | None
    max_new_tokens: int | None
    batch_size: int
    gen_batch_size: int
    finetune_rows: int
    finetune_steps: int
    gate_min_rows: int
    plumbing_only: bool = False  # a random model writes random text: let every row through the filters
    bf16: bool = True  # bf16 autocast for soft-prompt training and the LoRA fine-tune; sampling follows the domain


SCALES = {
    "smoke": Scale(model="embedded:tiny-random", target_rows=24, test_rows=16, steps=2, num_samples=8,
                   max_length=12, max_new_tokens=12, batch_size=4, gen_batch_size=8, finetune_rows=8, finetune_steps=1,
                   gate_min_rows=4, plumbing_only=True),
    "small": Scale(model="embedded:smollm2-135m", target_rows=400, test_rows=200, steps=150, num_samples=200,
                   max_length=None, max_new_tokens=None, batch_size=8, gen_batch_size=50, finetune_rows=64, finetune_steps=30,
                   gate_min_rows=40),
    "full": Scale(model="embedded:smollm2-135m", target_rows=100_000, test_rows=1000, steps=2000, num_samples=2000,
                  max_length=None, max_new_tokens=None, batch_size=16, gen_batch_size=128, finetune_rows=1000, finetune_steps=300,
                  gate_min_rows=200),
}


def scaled_config(config: DomainConfig, scale: Scale) -> DomainConfig:
    relaxed = {"gate.length_slack": 1000.0, "gate.max_repetition": 1.0, "gate.pii_patterns": [],
               "gate.max_length_ks": 1.0, "gate.drop_unfinished": False, "checks": [],
               "generation.support_quantile": None, "generation.auto_rows": scale.num_samples} if scale.plumbing_only else {}
    limits = {key: cap for key, cap in (("soft_prompt.max_length", scale.max_length),
                                        ("generation.max_new_tokens", scale.max_new_tokens)) if cap is not None}
    return config.with_overrides({**relaxed, **limits,
        "generator.model": scale.model, "soft_prompt.steps": scale.steps, "soft_prompt.batch_size": scale.batch_size,
        "soft_prompt.checkpoint_every": max(scale.steps // 2, 1), "soft_prompt.eval_every": max(scale.steps // 3, 1),
        "soft_prompt.warm_start": "",
        "soft_prompt.bf16": scale.bf16,
        "generation.num_samples": scale.num_samples, "generation.batch_size": scale.gen_batch_size,
        "gate.min_rows": scale.gate_min_rows, "gate.max_rows": max(scale.num_samples, scale.test_rows)})


def load_bench_models(config: DomainConfig) -> tuple[Any, Any, Any]:
    """The frozen LM (fp32: training uses bf16 autocast), the LM to sample with, and the embedder.

    Sampling runs in the dtype the domain's `generation.bf16` asks for, as the product samples.
    """
    import torch

    from synth_core.models import load_embedder, load_frozen_lm, use_bf16

    lm = load_frozen_lm(config.generator)
    bf16 = use_bf16(config.generation.bf16, lm.device, "generation.bf16")
    sampler_lm = replace(lm, model=copy.deepcopy(lm.model).to(torch.bfloat16)) if bf16 else lm
    return lm, sampler_lm, load_embedder(config.generator)


def bench_targets(split: TargetSplit, scale: Scale) -> TargetSplit:
    """The target rows a benchmark may train on, and the held-out rows its training curve is read on."""
    from synth_core.sources import TargetSplit

    return TargetSplit(split.train[: scale.target_rows], split.heldout[: scale.target_rows // 4], split.snapshot_hash,
                       split.validation)


def real_test_texts(config: DomainConfig, rows: int) -> list[str]:
    """The domain's real test split (domains/data/<d>/test.jsonl), rendered with its own template."""
    import pandas as pd

    from synth_core.sources import render_texts

    path = config.resolve_path(config.source.uri).with_name("test.jsonl")
    return render_texts(config, pd.read_json(path, lines=True).head(rows))


def _timed(stage: str, timings: dict, fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - started, 2)  # a stage may run twice
    return result


def check_rates(declared: list[CheckConfig], texts: list[str]) -> dict[str, float]:
    """Each declared row check's pass rate on `texts`, and the share passing all of them (`all`)."""
    from synth_core.quality.checks import RowChecks

    checks = RowChecks(declared)
    if not checks or not texts:
        return {}
    results = checks.run(texts)
    return {**results.pass_rates, "all": results.valid_rate}


def score_rows(config, texts, train, test, embedder, timings, declared: list[CheckConfig]
               ) -> tuple[dict[str, Any], list[str]]:
    """Gate metrics of a method's rows (MAUVE against `test`), the pass rates of the domain's `declared`
    checks on all of them (the plumbing-only smoke scale gates without them), and the rows the gate kept."""
    from synth_core.quality.gate import GateInputError, run_gate

    try:
        report = _timed("gate_s", timings, run_gate, config, texts, train, test, embed=embedder.encode_cached,
                        identities={"benchmark": True})
    except GateInputError as exc:
        return {"error": str(exc)}, []
    metrics = {**report.summary(), "mauve_spread": report.mauve.synthetic.spread if report.mauve else None,
               "reference_spread": report.mauve.reference.spread if report.mauve else None,
               "diversity": report.to_dict()["shape"].get("synthetic", {}),
               "exact": check_rates(declared, texts)}
    return metrics, report.kept_texts


def first_valid_rows(config: DomainConfig, texts: list[str], train: list[str], test: list[str], embed) -> list[str]:
    """The shortest head of the candidate rows that holds `generation.num_samples` rows passing the gate's
    filters (all rows if fewer pass): the batch without selection, scored at the size selection keeps."""
    from synth_core.quality.checks import RowChecks
    from synth_core.quality.filters import filter_batch

    filtered = filter_batch(texts, [*train, *test], config.gate, embed, checks=RowChecks(config.checks))
    wanted = config.generation.num_samples
    return texts[: filtered.kept[wanted - 1] + 1] if len(filtered.kept) >= wanted else texts


def mauve_in_space(config: DomainConfig, kept: list[str], train: list[str], test: list[str], featurize,
                   rows: int | None = None) -> dict[str, float] | None:
    """MAUVE of the kept rows and of real train rows against `test` in one feature space, on `rows` rows a side
    (default: as many as every side has, up to `gate.max_rows`). Equal-size samples, the gate's MAUVE settings;
    None with fewer than `gate.min_rows`."""
    from synth_core.quality.gate import sample_rows
    from synth_core.quality.mauve_score import gate_mauve_settings, mauve_over_seeds

    gate = config.gate
    size = min(len(kept), len(train), len(test), gate.max_rows, rows or gate.max_rows)
    if size < gate.min_rows:
        return None
    synthetic, real_train, real_test = (featurize(sample_rows(rows, size, gate.sample_seed, stream))
                                        for stream, rows in enumerate((kept, train, test)))
    settings = gate_mauve_settings(gate, size)
    return {"mauve": round(mauve_over_seeds(synthetic, real_test, settings).mean, 4),
            "reference": round(mauve_over_seeds(real_train, real_test, settings).mean, 4), "rows": size}


def equal_rows_mauve(config: DomainConfig, kept: dict[str, list[str]], train: list[str], test: list[str],
                     spaces: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every method's kept rows scored at the fewest rows any method kept, in each feature space of `spaces`.

    MAUVE on fewer rows reads higher (real-vs-real on BoolQ: 0.99 at 53 rows, 0.91 at 200), so a method
    whose rows mostly fail the checks scores on a few dozen and looks closer to the real rows than it is;
    at one row count, with the same real rows, the methods compare like with like."""
    size = min(len(rows) for rows in kept.values())
    return {method: {"rows": size, **{name: mauve_in_space(config, rows, train, test, featurize, size)
                                       for name, featurize in spaces.items()}}
            for method, rows in kept.items()}


def method_config(config: DomainConfig, method: str) -> DomainConfig:
    """The domain's config as `method` runs it: its soft-prompt variant, or its hard-prompt style."""
    if method in SOFT_VARIANTS:
        return config.with_overrides({"soft_prompt.variant": method})
    return config.with_overrides({"generation.baseline_style": method.removeprefix("hard-prompt-")})


def seeded(config: DomainConfig, seed: int | None) -> DomainConfig:
    """`config` with `seed` as its training and sampling seed (`soft_prompt.seed`, `generation.seed`); None keeps
    the YAML's own."""
    return config if seed is None else config.with_overrides({"soft_prompt.seed": seed, "generation.seed": seed})


def bench_method_config(config: DomainConfig, scale: Scale, method: str, seed: int | None = None) -> DomainConfig:
    """The domain's config as the benchmark runs `method` at `scale` (for tools that study one method alone)."""
    return method_config(scaled_config(seeded(config, seed), scale), method)


def sample_method(config: DomainConfig, checkpoint: Path | None, sampler_lm, embedder, targets, path: Path,
                  rows: int | None = None):
    """Write `rows` (default `config.generation.num_samples`) rows to `path`: from the soft prompt at `checkpoint`, or from
    the hard-prompt baseline when there is none (`config` from `method_config`), with the domain's decoding
    (for `auto`, chosen on the validation split as the product chooses it). Returns the generation's result
    and the decoding record (the choice and every setting tried)."""
    from synth_core.generation.auto_decoding import settle_decoding
    from synth_core.generation.factory import build_generator
    from synth_core.generation.run import generate_to_parquet

    generator, _ = build_generator(config, checkpoint, lm=sampler_lm, embedder=embedder, targets=targets)
    decoding = settle_decoding(generator, config, targets.validation, embedder.encode_cached)
    settings = config.generation
    return generate_to_parquet(generator, path, num_samples=rows or settings.num_samples,
                               batch_size=settings.batch_size, seed=settings.seed), decoding


def _train_and_generate(method: str, config: DomainConfig, lm, sampler_lm, embedder, targets, out_dir: Path,
                        path: Path, row: dict[str, Any], reused_checkpoint: Path | None = None) -> None:
    """Train the method's soft prompt (if it has one; given `reused_checkpoint`, an earlier run's is used) and
    write its rows to `path`; timings into `row`."""
    from synth_core.softprompt.training import train_soft_prompt

    timings = row["timings"]
    config = method_config(config, method)
    checkpoint = reused_checkpoint
    if reused_checkpoint is not None:
        row["reused_checkpoint"] = str(reused_checkpoint)
    elif method in SOFT_VARIANTS:
        trained = _timed("train_s", timings, train_soft_prompt, config, lm, embedder, targets,
                         out_dir / config.name / method)
        row["training"] = {k: trained.summary()[k] for k in ("first_loss", "final_loss", "initial_heldout_nll",
                                                             "heldout_nll", "steps", "tokens_per_second")}
        checkpoint = trained.checkpoint_dir
    generated, row["decoding"] = _timed("generate_s", timings, sample_method, config, checkpoint, sampler_lm, embedder,
                                        targets, path, config.generation.candidate_rows)
    row["generation_tokens_per_second"] = round(generated.tokens_per_second, 1)


def parse_methods(text: str) -> tuple[str, ...]:
    """A comma-separated subset of METHODS, in METHODS order; empty means all."""
    chosen = {m.strip() for m in text.split(",") if m.strip()}
    unknown = sorted(chosen - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in chosen) or METHODS


def downstream_loss(lm, rows: list[str], test: list[str], settings, no_finetune_loss: float,
                    subsets: int = 1) -> dict[str, Any]:
    """LoRA fine-tune on the first `settings.rows` rows and score on `test`. With `subsets` > 1, also on
    the next disjoint slices of as many rows (as many as there are rows for), so the loss comes with
    its spread over which rows were drawn: at 64 rows that spread can exceed the gaps between methods."""
    import numpy as np

    from synth_core.downstream import finetune_and_score

    size = settings.rows
    slices = [rows[i * size : (i + 1) * size] for i in range(subsets) if len(rows) >= (i + 1) * size] or [rows[:size]]
    scored = [finetune_and_score(lm, rows_slice, test, settings, no_finetune_loss) for rows_slice in slices]
    result = dict(scored[0])
    if subsets > 1:
        losses = [r["heldout_loss_after"] for r in scored]
        result.update({"subset_losses": losses, "subset_mean": round(float(np.mean(losses)), 4),
                       "subset_std": round(float(np.std(losses)), 4)})
    return result


def run_domain(config: DomainConfig, scale: Scale, out_dir: Path, methods_run: tuple[str, ...] = METHODS,
               reuse: bool = False, downstream_subsets: int = 1) -> dict[str, Any]:
    """Every method on one domain. With `reuse`, a method whose rows (and checkpoint) an earlier run left
    in `out_dir` is scored again from them: a run that died late need not train and sample again."""
    import pandas as pd

    from synth_core.downstream import FinetuneSettings, mean_nll
    from synth_core.quality.features import CachedFeatures, llm_features
    from synth_core.softprompt.checkpoint import is_checkpoint, load_checkpoint
    from synth_core.softprompt.training import CHECKPOINT_DIR, loss_summary
    from synth_core.sources import load_target_split
    from synth_core.token_limits import resolve_token_limits

    declared = config.checks
    config = scaled_config(config, scale)
    lm, sampler_lm, embedder = load_bench_models(config)
    targets = bench_targets(load_target_split(config), scale)
    config = resolve_token_limits(config, lm.tokenizer, targets.train)  # the product's auto limits, measured once
    test = real_test_texts(config, scale.test_rows)
    finetune = FinetuneSettings(rows=scale.finetune_rows, steps=scale.finetune_steps,
                                max_length=config.soft_prompt.max_length, heldout_rows=scale.test_rows, bf16=scale.bf16)
    no_finetune_loss = mean_nll(lm.model, lm.tokenizer, test, finetune)
    llm_featurize = CachedFeatures(llm_features(config.generator, lm=lm)[0])
    methods: dict[str, dict[str, Any]] = {}
    kept_by_method: dict[str, list[str]] = {}  # the rows each method's gate kept (with selection)
    progress = Progress(log, f"{config.name} methods", len(methods_run), "methods")
    for method in methods_run:
        timings: dict[str, float] = {}
        row: dict[str, Any] = {"timings": timings}
        path = out_dir / config.name / f"{method}.parquet"
        checkpoint = out_dir / config.name / method / CHECKPOINT_DIR
        reused_prompt = reuse and method in SOFT_VARIANTS and is_checkpoint(checkpoint)
        if reused_prompt:
            row["training"] = loss_summary(load_checkpoint(checkpoint)[1])
        if reuse and path.exists() and (method not in SOFT_VARIANTS or reused_prompt):
            row["reused"] = str(path)  # rows of an earlier run: scored again, not re-trained or re-generated
        else:
            _train_and_generate(method, config, lm, sampler_lm, embedder, targets, out_dir, path, row,
                                checkpoint if reused_prompt else None)
        texts = pd.read_parquet(path)["text"].tolist()
        # with selection, as the product runs: every candidate row in, num_samples selected; without: the first
        # num_samples rows that pass the filters, no support cut: as many rows, so MAUVE compares like with like
        for scored, rows, run_config in (
                (row, texts, config),
                (row.setdefault("without_selection", {}), first_valid_rows(config, texts, targets.train, test,
                                                                          embedder.encode_cached),
                 config.with_overrides({"generation.support_quantile": None}))):
            metrics, kept = score_rows(run_config, rows, targets.train, test, embedder, timings, declared)
            scored.update(metrics)
            # selection works in the gate's (MiniLM) space, so a gain there alone proves little: score a second
            # space too, the frozen generator's mean-pooled hidden states
            scored["mauve_llm"] = _timed("llm_features_s", timings, mauve_in_space, run_config, kept,
                                         targets.train, test, llm_featurize)
            kept_by_method.setdefault(method, kept)
            # downstream trains on what the gate would publish
            scored["downstream"] = (_timed("finetune_s", timings, downstream_loss, lm, kept, test, finetune,
                                           no_finetune_loss, downstream_subsets)
                                    if kept else {"error": "the gate kept no rows"})
        methods[method] = row
        progress.update(len(methods), f"{method}: MAUVE {row.get('mauve')}, leakage {row.get('leakage_rate')}")
    progress.close()
    scored_methods = {m: rows for m, rows in kept_by_method.items() if rows}
    if len(scored_methods) > 1:
        spaces = {"minilm": embedder.encode_cached, "llm": llm_featurize}
        for method, equal in equal_rows_mauve(config, scored_methods, targets.train, test, spaces).items():
            methods[method]["equal_rows"] = equal
    real = downstream_loss(lm, targets.train, test, finetune, no_finetune_loss, downstream_subsets)
    reference = {"real_rows_finetuned": real, "no_finetune_loss": round(no_finetune_loss, 4),
                 "exact_on_real_test": check_rates(declared, test)}
    hard = [m for m in methods if m.startswith("hard-prompt") and methods[m].get("mauve") is not None]
    best_hard = max(hard, key=lambda m: methods[m]["mauve"]) if hard else None
    return {"domain": config.name, "methods": methods, "reference": reference, "best_hard_prompt": best_hard,
            "targets": {"train_rows": len(targets.train), "test_rows": len(test)},
            "token_limits": {"max_length": config.soft_prompt.max_length,
                             "max_new_tokens": config.generation.max_new_tokens}}


def markdown_table(results: dict[str, Any]) -> str:
    lines = []
    for domain in results["domains"]:
        ref = next((m.get("mauve_reference") for m in domain["methods"].values() if m.get("mauve_reference")), None)
        ref_text = f"{ref:.3f}" if ref is not None else "n/a"
        lines += [f"### {domain['domain']} (reference MAUVE real-vs-real {ref_text}; no-finetune loss "
                  f"{domain['reference']['no_finetune_loss']}, real-rows finetune loss "
                  f"{domain['reference']['real_rows_finetuned']['heldout_loss_after']})", "",
                  "| method | MAUVE ± spread | leakage | duplicates | distinct-2 | length KS | downstream loss | exact | "
                  "train s | generate s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, m in domain["methods"].items():
            if "error" in m:
                lines.append(f"| {name} | error: {m['error'][:80]} | | | | | | | | |")
                continue
            mauve = "n/a" if m.get("mauve") is None else f"{m['mauve']:.3f} ± {m['mauve_spread']:.3f}"
            exact = ", ".join(f"{k} {v:.2f}" for k, v in m.get("exact", {}).items())
            lines.append(f"| {name} | {mauve} | {m['leakage_rate']:.3f} | {m['duplicate_rate']:.3f} | "
                         f"{m['diversity'].get('distinct_2', float('nan')):.3f} | "
                         f"{m['diversity'].get('length_ks', float('nan')):.3f} | "
                         f"{_downstream_cell(m['downstream'])} | {exact} | "
                         f"{m['timings'].get('train_s', 0)} | {m['timings'].get('generate_s', 0)} |")
        lines += ["", "Selection (oversampled rows, support cut, cluster-matched draw) against the first num_samples "
                  "rows without it; MAUVE against the test split in two feature spaces:", "",
                  "| method | MAUVE MiniLM: selected / not | MAUVE LLM states: selected / not (reference) | "
                  "downstream loss: selected / not | all checks pass (generated rows) |", "|---|---|---|---|---|"]
        for name, m in domain["methods"].items():
            if "error" in m or "without_selection" not in m:
                continue
            plain = m["without_selection"]
            llm, llm_plain = m.get("mauve_llm") or {}, plain.get("mauve_llm") or {}
            lines.append(f"| {name} | {_cell(m.get('mauve'))} / {_cell(plain.get('mauve'))} | "
                         f"{_cell(llm.get('mauve'))} / {_cell(llm_plain.get('mauve'))} ({_cell(llm.get('reference'))}) | "
                         f"{_downstream_cell(m['downstream'])} / {_downstream_cell(plain.get('downstream', {}))} | "
                         f"{_cell(m.get('exact', {}).get('all'))} |")
        equal = {name: m["equal_rows"] for name, m in domain["methods"].items() if "equal_rows" in m}
        if equal:
            size = next(iter(equal.values()))["rows"]
            lines += ["", f"Like with like: every method's kept rows at {size} rows (the fewest any method kept; MAUVE "
                      "on fewer rows reads higher), against the same real rows:", "",
                      "| method | MAUVE MiniLM / reference | MAUVE LLM states / reference |", "|---|---|---|"]
            lines += [f"| {name} | {_pair(e.get('minilm'))} | {_pair(e.get('llm'))} |" for name, e in equal.items()]
        lines.append("")
    return "\n".join(lines)


def _pair(score: dict[str, float] | None) -> str:
    return "n/a (too few rows)" if score is None else f"{score['mauve']:.3f} / {score['reference']:.3f}"


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _downstream_cell(downstream: dict[str, Any]) -> str:
    if "subset_mean" in downstream:
        return f"{downstream['subset_mean']} ± {downstream['subset_std']} ({len(downstream['subset_losses'])} subsets)"
    return str(downstream.get("heldout_loss_after", "n/a"))


def plot_domain(domain: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, m in domain["methods"].items() if m.get("mauve") is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.bar(names, [domain["methods"][n]["mauve"] for n in names],
             yerr=[domain["methods"][n]["mauve_spread"] for n in names], color="tab:blue")
    refs = [domain["methods"][n]["mauve_reference"] for n in names]
    if refs:
        left.axhline(refs[0], color="black", linestyle="--", label="real vs real")
        left.legend()
    left.set_ylabel("MAUVE vs real test")
    left.set_ylim(0, 1.05)
    losses = {n: m["downstream"].get("subset_mean", m["downstream"].get("heldout_loss_after"))
              for n, m in domain["methods"].items()}
    losses = {n: v for n, v in losses.items() if v is not None}
    right.bar(list(losses), list(losses.values()), color="tab:orange")
    right.axhline(domain["reference"]["no_finetune_loss"], color="gray", linestyle=":", label="no fine-tune")
    right.axhline(domain["reference"]["real_rows_finetuned"]["heldout_loss_after"], color="green", linestyle="--",
                  label="real rows")
    floor = min([*losses.values(), domain["reference"]["real_rows_finetuned"]["heldout_loss_after"]])
    right.set_ylim(bottom=0.95 * floor)  # the methods differ by tenths of a nat: a zero baseline would hide it
    right.set_ylabel("test loss after LoRA fine-tune")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=30)
    fig.suptitle(domain["domain"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_quality(domains: list[str], scale_name: str, out_dir: Path, domains_dir: Path = Path("domains"),
                methods_run: tuple[str, ...] = METHODS, reuse: bool = False, downstream_subsets: int = 1,
                seed: int | None = None) -> dict:
    """Benchmark `methods_run` on each domain; write results.json, results.md and one plot per domain.

    `seed` replaces each domain's training and sampling seeds (`soft_prompt.seed`, `generation.seed`): one run
    reads one draw of both, and on gsm8k two draws of the same YAML scored 0.81x and 0.97x the reference, so a
    claim about a method needs several."""
    scale = SCALES[scale_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {"scale": scale_name, "settings": asdict(scale), "methods": list(methods_run),
               "downstream_subsets": downstream_subsets, "seed": seed, "domains": []}
    for name in domains:
        domain = run_domain(seeded(load_domain(domains_dir / f"{name}.yaml"), seed), scale, out_dir, methods_run, reuse, downstream_subsets)
        results["domains"].append(domain)
        plot_domain(domain, out_dir / f"{name}.png")
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    results["seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_table(results))
    return results
