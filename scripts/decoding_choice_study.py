"""How well does auto decoding pick? One trained `mc` prompt, every grid setting sampled in full.

`rows OUT SEED [DOMAIN_YAML]`: trains the prompt at the `small` scale (seed SEED; gsm8k unless DOMAIN_YAML names
another domain), generates the quality bench's candidate rows at every setting of the auto grid and scores each
batch on the test split as `synth bench quality` does (study.json). `simulate OUT DRAWS`: replays the choice
(`ranked_settings`) on random draws of `auto_rows` rows per setting, as the product samples them, with three
scores of a setting's valid rows against the validation split: per-setting MAUVE (the rule until 40dbc36), MAUVE
on one quantisation shared by every setting, and the product's MMD; and reports the test MAUVE each would get
(simulation.json). `llm OUT 0`: scores every setting's kept rows against the test split in a second feature space,
the frozen generator's mean-pooled hidden states (as the quality bench's `mauve_llm`), and reports the LLM-state
MAUVE each rule's picks in simulation.json would get (llm.json): MMD works in the MiniLM space it is judged in
there. `selection OUT 0`: every setting's rows with and without selection, in both spaces (selection.json). Successive halving, tried at 7e31f47, is in that commit's version. docs/BENCHMARKS.md,
"Choosing the decoding" and "A steadier score for the decoding choice", has the figures.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from synth_core.bench.quality import (
    SCALES,
    bench_method_config,
    bench_targets,
    first_valid_rows,
    load_bench_models,
    mauve_in_space,
    real_test_texts,
    score_rows,
)
from synth_core.config import load_domain
from synth_core.generation.auto_decoding import (
    MIN_SCORED_ROWS,
    ValidationDistance,
    decoding_grid,
    ranked_settings,
    valid_rows,
)
from synth_core.generation.factory import build_generator
from synth_core.generation.run import generate_to_parquet
from synth_core.models import load_embedder
from synth_core.quality.checks import RowChecks
from synth_core.quality.features import CachedFeatures, llm_features
from synth_core.quality.gate import sample_rows
from synth_core.quality.mauve_score import (
    KMEANS_EXPLAINED_VARIANCE,
    KMEANS_MAX_ITER,
    KMEANS_NUM_REDO,
    gate_mauve_settings,
    mauve_over_seeds,
    native_stderr_silenced,
)
from synth_core.softprompt.checkpoint import is_checkpoint
from synth_core.softprompt.training import CHECKPOINT_DIR, train_soft_prompt
from synth_core.sources import load_target_split
from synth_core.token_limits import resolve_token_limits

DEFAULT_DOMAIN = "domains/gsm8k.yaml"  # the committed pools predate the DOMAIN argument


def _config(seed: int, domain: str):
    config = load_domain(Path(domain))
    return bench_method_config(config, SCALES["small"], "mc", seed), config.checks


def rows(out: Path, seed: int, domain: str) -> None:
    config, declared = _config(seed, domain)
    lm, sampler_lm, embedder = load_bench_models(config)
    targets = bench_targets(load_target_split(config), SCALES["small"])
    config = resolve_token_limits(config, lm.tokenizer, targets.train)
    test = real_test_texts(config, SCALES["small"].test_rows)
    checkpoint = out / "mc" / CHECKPOINT_DIR
    if not is_checkpoint(checkpoint):
        checkpoint = train_soft_prompt(config, lm, embedder, targets, out / "mc").checkpoint_dir
    generator, _ = build_generator(config, checkpoint, lm=sampler_lm, embedder=embedder, targets=targets)
    own, settings = generator.settings, []
    for temperature, top_p in decoding_grid(config.generation):
        path = out / f"t{temperature:g}-p{top_p:g}.parquet"
        started = time.perf_counter()
        if not path.exists():
            generator.settings = replace(own, temperature=temperature, top_p=top_p)
            generate_to_parquet(generator, path, num_samples=config.generation.candidate_rows,
                                batch_size=own.batch_size, seed=own.seed)
        texts = pd.read_parquet(path)["text"].tolist()
        scored = config.with_overrides({"generation.temperature": temperature, "generation.top_p": top_p})
        metrics, kept = score_rows(scored, texts, targets.train, test, embedder, {}, declared)
        settings.append({"temperature": temperature, "top_p": top_p, "generate_s": round(time.perf_counter() - started),
                         "mauve": metrics.get("mauve"), "mauve_reference": metrics.get("mauve_reference"),
                         "kept": len(kept)})
        print(json.dumps(settings[-1]), flush=True)
    study = {"seed": seed, "domain": domain, "validation": list(targets.validation), "settings": settings}
    (out / "study.json").write_text(json.dumps(study, indent=1))


def shared_bucket_mauve(groups: list[np.ndarray], reference: np.ndarray, buckets: int, seeds: list[int],
                        scaling: float) -> list[float]:
    """MAUVE of each group against `reference` on one quantisation fitted to all of them together (as mauve-text
    quantises: rows L2-normalised, PCA to 90% of the variance, k-means), averaged over `seeds`: every setting's rows fall into the same
    buckets, and the whole reference side is used, so the settings differ only by their own rows."""
    import faiss
    from mauve.compute_mauve import compute_area_under_curve, get_divergence_curve_for_multinomials
    from sklearn.decomposition import PCA

    data = np.vstack([reference, *groups])
    data = data / np.linalg.norm(data, axis=1, keepdims=True)
    bounds = np.cumsum([len(reference)] + [len(g) for g in groups])
    weights = np.linspace(1e-6, 1 - 1e-6, 25)  # mauve-text's default discretisation
    scores = np.zeros(len(groups))
    for seed in seeds:
        pca = PCA(random_state=seed + 1).fit(data)
        dims = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= KMEANS_EXPLAINED_VARIANCE)) + 1
        reduced = pca.transform(data)[:, :dims].astype(np.float32)
        kmeans = faiss.Kmeans(dims, buckets, niter=KMEANS_MAX_ITER, nredo=KMEANS_NUM_REDO, seed=seed + 2)
        with native_stderr_silenced():
            kmeans.train(reduced)
        labels = kmeans.index.search(reduced, 1)[1].ravel()
        parts = np.split(labels, bounds[:-1])
        real = np.bincount(parts[0], minlength=buckets) / len(parts[0])
        for index, part in enumerate(parts[1:]):
            fake = np.bincount(part, minlength=buckets) / len(part)
            xs, ys = get_divergence_curve_for_multinomials(fake, real, weights, scaling).T
            first, second = np.argsort(xs), np.argsort(ys)
            area = (compute_area_under_curve(xs[first], ys[first]) + compute_area_under_curve(ys[second], xs[second])) / 2
            scores[index] += area / len(seeds)
    return scores.tolist()


def own_bucket_mauve(valid: list[str], validation: list[str], embed, config) -> float | None:
    """The rule before MMD (7e31f47): MAUVE of a setting's valid rows against as many validation rows, on
    its own quantisation."""
    size = min(len(valid), len(validation))
    if size < MIN_SCORED_ROWS:
        return None
    gate = config.gate
    real, synthetic = sample_rows(validation, size, gate.sample_seed, 1), sample_rows(valid, size, gate.sample_seed, 0)
    settings = gate_mauve_settings(gate, size, max_buckets=max(2, size // 5))
    return round(mauve_over_seeds(embed(synthetic), embed(real), settings).mean, 4)


def _setting_frame(out: Path, setting: dict) -> pd.DataFrame:
    """One setting's committed pool (`rows` wrote it)."""
    return pd.read_parquet(out / f"t{setting['temperature']:g}-p{setting['top_p']:g}.parquet")


def _valid_pool(out: Path, setting: dict, checks: RowChecks) -> tuple[list[str], np.ndarray]:
    """One setting's pool rows, and per row whether the product's auto decoding counts it valid."""
    frame = _setting_frame(out, setting)
    texts = frame["text"].tolist()
    return texts, np.array(valid_rows(texts, frame["finished"].tolist(), checks.run(texts)))


def simulate(out: Path, draws: int, domain: str) -> None:
    """Three scores for the same 64-row draws, each ranked by `ranked_settings` (validity first, then score):
    per-setting MAUVE as the product chose before (`flat`), MAUVE on one quantisation shared by all settings and
    the whole validation split (`shared`), and MMD against the whole validation split as the product chooses
    now (`mmd`)."""
    study = json.loads((out / "study.json").read_text())
    config, _ = _config(study["seed"], study.get("domain", domain))
    embed, checks, validation = load_embedder(config.generator).encode_cached, RowChecks(config.checks), study["validation"]
    gate, auto_rows = config.gate, config.generation.auto_rows
    distance = ValidationDistance(validation, embed)
    pools = []
    for setting in study["settings"]:
        texts, valid = _valid_pool(out, setting, checks)
        pools.append((setting, texts, valid, embed(texts)))
    final = np.array([np.nan if setting["mauve"] is None else setting["mauve"] for setting, *_ in pools])  # None: too few kept

    def picks(rng) -> dict[str, int]:
        drawn = [(i, rng.permutation(len(texts))[:auto_rows]) for i, (_, texts, _, _) in enumerate(pools)]
        base = [{"index": i, "valid_rate": float(pools[i][2][order].mean()),
                 "rows": [r for r in order if pools[i][2][r]]} for i, order in drawn]
        scores = {
            "flat": [own_bucket_mauve([pools[b["index"]][1][r] for r in b["rows"]], validation, embed, config)
                     for b in base],
            "shared": shared_bucket_mauve([pools[b["index"]][3][b["rows"]] for b in base], distance.reference,
                                          max(2, round(len(validation) / 10)), gate.mauve_seeds, gate.mauve_scaling_factor),
            "mmd": [distance([pools[b["index"]][1][r] for r in b["rows"]]) for b in base],
        }
        # ranked_settings takes the lowest `mmd` first: a MAUVE (higher is better) goes in negated
        scores = {rule: [None if v is None else (v if rule == "mmd" else -v) for v in values]
                  for rule, values in scores.items()}
        return {rule: ranked_settings([{**b, "mmd": s} for b, s in zip(base, score, strict=True)],
                                      config.generation)[0][0]["index"] for rule, score in scores.items()}

    rng, chosen = np.random.default_rng(0), {"flat": [], "shared": [], "mmd": []}
    for draw in range(draws):
        for rule, index in picks(rng).items():
            chosen[rule].append(index)
        print("draw", draw, {rule: c[-1] for rule, c in chosen.items()}, flush=True)
    summary = {"final_test_mauve": final.tolist(), "valid_rate": [float(v.mean()) for _, _, v, _ in pools],
               "best_setting_test_mauve": float(np.nanmax(final)), "draws": draws}
    for rule, indices in chosen.items():
        summary[rule] = {"picks": indices, "mean_test_mauve": float(final[indices].mean()),
                         "sd": float(final[indices].std())}
    for rule in ("shared", "mmd"):
        gain = final[chosen[rule]] - final[chosen["flat"]]
        summary[rule]["gain_over_flat"] = {"mean": float(gain.mean()), "se": float(gain.std(ddof=1) / np.sqrt(draws))}
    (out / "simulation.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in chosen}))
    print({rule: (round(summary[rule]["mean_test_mauve"], 3), summary[rule].get("gain_over_flat")) for rule in chosen})


def draw_size(out: Path, draws: int, domain: str) -> None:
    """The product's MMD choice replayed at several rows per setting (`generation.auto_rows`): does sampling more
    rows per setting pick better? Each draw size gets `draws` random draws of that many rows per setting (the
    whole pool once); the test MAUVE of the picks, MiniLM from study.json and LLM states from llm.json where the
    pool has one (draw_size.json)."""
    study = json.loads((out / "study.json").read_text())
    config, _ = _config(study["seed"], study.get("domain", domain))
    embed, checks = load_embedder(config.generator).encode_cached, RowChecks(config.checks)
    distance = ValidationDistance(study["validation"], embed)
    pools = []
    for setting in study["settings"]:
        pools.append((setting, *_valid_pool(out, setting, checks)))
    spaces = {"minilm": np.array([np.nan if s["mauve"] is None else s["mauve"] for s in study["settings"]])}
    if (out / "llm.json").exists():
        spaces["llm"] = np.array(json.loads((out / "llm.json").read_text())["llm_test_mauve"], dtype=float)
    pool_size = min(len(texts) for _, texts, _ in pools)
    rng, summary = np.random.default_rng(0), {"pool_rows": pool_size, "sizes": {}}
    for size in sorted({s for s in (64, 128, 256) if s < pool_size} | {pool_size}):
        picks = []
        for _ in range(draws if size < pool_size else 1):
            base = []
            for index, (_, texts, valid) in enumerate(pools):
                order = rng.permutation(len(texts))[:size]
                base.append({"index": index, "valid_rate": float(valid[order].mean()),
                             "mmd": distance([texts[r] for r in order if valid[r]])})
            picks.append(ranked_settings(base, config.generation)[0][0]["index"])
        summary["sizes"][size] = {"picks": np.bincount(picks, minlength=len(pools)).tolist(),
                                  **{f"mean_{space}": float(np.nanmean(final[picks])) for space, final in spaces.items()}}
        print(size, json.dumps(summary["sizes"][size]), flush=True)
    (out / "draw_size.json").write_text(json.dumps(summary, indent=1))


def _test_scoring(study: dict, domain: str):
    """What scoring a pool against the test split needs: the config (token limits resolved), its declared checks,
    the embedder, LLM-state features (the bench's loaded SmolLM2), the bench's targets and the test rows."""
    config, declared = _config(study["seed"], study.get("domain", domain))
    lm, _, embedder = load_bench_models(config)
    featurize = CachedFeatures(llm_features(config.generator, lm=lm)[0])
    targets = bench_targets(load_target_split(config), SCALES["small"])
    config = resolve_token_limits(config, lm.tokenizer, targets.train)
    return config, declared, embedder, featurize, targets, real_test_texts(config, SCALES["small"].test_rows)


def _setting_rows(out: Path, config, setting: dict):
    """One setting's pool rows, and the config that sampled them."""
    texts = _setting_frame(out, setting)["text"].tolist()
    return texts, config.with_overrides({"generation.temperature": setting["temperature"],
                                         "generation.top_p": setting["top_p"]})


def llm(out: Path, _: int, domain: str) -> None:
    """Each setting's gate-kept rows (as `rows` scored them) in the LLM-state space against the test split, and the
    mean LLM-state MAUVE of each rule's picks in simulation.json (a setting too small to score counts as missing)."""
    study, simulation = (json.loads((out / name).read_text()) for name in ("study.json", "simulation.json"))
    config, declared, embedder, featurize, targets, test = _test_scoring(study, domain)
    per_setting = []
    for setting in study["settings"]:
        texts, scored = _setting_rows(out, config, setting)
        _, kept = score_rows(scored, texts, targets.train, test, embedder, {}, declared)
        per_setting.append(mauve_in_space(scored, kept, targets.train, test, featurize))
        print(json.dumps({**{k: setting[k] for k in ("temperature", "top_p", "mauve")}, "llm": per_setting[-1]}),
              flush=True)
    final = np.array([np.nan if s is None else s["mauve"] for s in per_setting])
    summary = {"llm_test_mauve": final.tolist(),
               "llm_reference": next((s["reference"] for s in per_setting if s), None),
               "rules": {rule: {"mean_llm_mauve": float(np.nanmean(final[simulation[rule]["picks"]])),
                                "unscored_picks": int(np.isnan(final[simulation[rule]["picks"]]).sum())}
                         for rule in ("flat", "shared", "mmd")}}
    for rule in ("shared", "mmd"):
        gain = final[simulation[rule]["picks"]] - final[simulation["flat"]["picks"]]
        gain = gain[~np.isnan(gain)]
        summary["rules"][rule]["gain_over_flat"] = {"mean": float(gain.mean()),
                                                    "se": float(gain.std(ddof=1) / np.sqrt(len(gain)))}
    (out / "llm.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


def selection(out: Path, _: int, domain: str) -> None:
    """Each setting's rows scored with selection (every candidate in, `num_samples` selected, as the product
    publishes) and without (the first `num_samples` rows that pass the filters), in both feature spaces, at the
    fewer kept rows of the two (selection.json): does selection help, and does that depend on the temperature?
    (`synth bench quality` pairs them so for its chosen setting, each at its own kept count.)"""
    study = json.loads((out / "study.json").read_text())
    config, declared, embedder, featurize, targets, test = _test_scoring(study, domain)
    spaces = {"minilm": embedder.encode_cached, "llm": featurize}
    per_setting = []
    for setting in study["settings"]:
        texts, scored = _setting_rows(out, config, setting)
        unselected = scored.with_overrides({"generation.support_quantile": None})
        row = {k: setting[k] for k in ("temperature", "top_p")}
        kept = {name: score_rows(run_config, rows, targets.train, test, embedder, {}, declared)[1]
                for name, run_config, rows in (
                    ("selected", scored, texts),
                    ("first_valid", unselected,
                     first_valid_rows(scored, texts, targets.train, test, embedder.encode_cached)))}
        size = min(map(len, kept.values()))  # like with like: MAUVE on fewer rows reads higher
        for name, rows in kept.items():
            row[name] = {space: mauve_in_space(scored, rows, targets.train, test, featurize, size)
                         for space, featurize in spaces.items()}
        per_setting.append(row)
        print(json.dumps(row), flush=True)
    gains = {space: [r["selected"][space]["mauve"] - r["first_valid"][space]["mauve"] for r in per_setting
                     if r["selected"][space] and r["first_valid"][space]] for space in spaces}
    summary = {"settings": per_setting,
               "gain": {space: {"mean": float(np.mean(g)), "se": float(np.std(g, ddof=1) / np.sqrt(len(g))),
                                "settings": len(g)} for space, g in gains.items() if len(g) > 1}}
    (out / "selection.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["gain"]))


if __name__ == "__main__":
    command, out, number = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    domain = sys.argv[4] if len(sys.argv) > 4 else DEFAULT_DOMAIN
    {"rows": rows, "simulate": simulate, "llm": llm, "selection": selection,
     "draw_size": draw_size}[command](out, number, domain)
