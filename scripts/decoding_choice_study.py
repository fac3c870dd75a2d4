"""How well does auto decoding pick? One trained gsm8k `mc` prompt, every grid setting sampled in full.

`rows OUT SEED`: trains the prompt at the `small` scale (seed SEED), generates the quality bench's candidate
rows at every setting of the auto grid and scores each batch on the test split as `synth bench quality` does
(study.json). `simulate OUT DRAWS`: replays the product's choice (`ranked_settings`) on random draws of each
setting's rows, on `auto_rows` rows per setting as the product samples them and by successive halving at the
same budget (tried, not adopted), and reports the test MAUVE each would get (simulation.json).
docs/BENCHMARKS.md, "Choosing the decoding", has the figures.
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
    bench_targets,
    load_bench_models,
    method_config,
    real_test_texts,
    scaled_config,
    score_rows,
)
from synth_core.config import load_domain
from synth_core.generation.auto_decoding import decoding_grid, ranked_settings, valid_rows, validation_mauve
from synth_core.generation.factory import build_generator
from synth_core.generation.run import generate_to_parquet
from synth_core.models import load_embedder
from synth_core.quality.checks import RowChecks
from synth_core.softprompt.checkpoint import is_checkpoint
from synth_core.softprompt.training import CHECKPOINT_DIR, train_soft_prompt
from synth_core.sources import load_target_split
from synth_core.token_limits import resolve_token_limits

DOMAIN = Path("domains/gsm8k.yaml")


def halving_rounds(settings_count: int, auto_rows: int) -> list[tuple[int, int]]:
    """(rows each survivor holds after the round, survivors kept after it): the flat grid's rows spent in
    ceil(log2(settings)) equal rounds, the worse half stopping after each; 6 x 64 -> 21 x 6, 63 x 3, 127 x 2."""
    rounds = max(1, int(np.ceil(np.log2(settings_count))))
    per_round, alive, rows, plan = auto_rows * settings_count // rounds, settings_count, 0, []
    for _ in range(rounds):
        rows += max(1, per_round // alive)
        alive = max(1, -(-alive // 2))
        plan.append((rows, alive))
    return plan


def _config(seed: int):
    config = load_domain(DOMAIN).with_overrides({"soft_prompt.seed": seed, "generation.seed": seed})
    return method_config(scaled_config(config, SCALES["small"]), "mc"), config.checks


def rows(out: Path, seed: int) -> None:
    config, declared = _config(seed)
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
    study = {"seed": seed, "validation": list(targets.validation), "settings": settings}
    (out / "study.json").write_text(json.dumps(study, indent=1))


def simulate(out: Path, draws: int) -> None:
    study = json.loads((out / "study.json").read_text())
    config, _ = _config(study["seed"])
    embed, checks, validation = load_embedder(config.generator).encode_cached, RowChecks(config.checks), study["validation"]
    pools = []
    for setting in study["settings"]:
        frame = pd.read_parquet(out / f"t{setting['temperature']:g}-p{setting['top_p']:g}.parquet")
        texts = frame["text"].tolist()
        pools.append((setting, texts, np.array(valid_rows(texts, frame["finished"].tolist(), checks))))
    final = np.array([setting["mauve"] for setting, _, _ in pools])

    def figures(index: int, order: np.ndarray) -> dict:
        setting, texts, valid = pools[index]
        return {"index": index, "temperature": setting["temperature"], "top_p": setting["top_p"],
                "valid_rate": float(valid[order].mean()),
                "mauve": validation_mauve([texts[i] for i in order if valid[i]], validation, embed, config)}

    def flat(rng) -> int:
        scored = [figures(i, rng.permutation(len(pools[i][1]))[: config.generation.auto_rows]) for i in range(len(pools))]
        return ranked_settings(scored, config.generation)[0][0]["index"]

    def halving(rng) -> int:
        orders, alive = [rng.permutation(len(texts)) for _, texts, _ in pools], list(range(len(pools)))
        for count, keep in halving_rounds(len(pools), config.generation.auto_rows):
            alive = [r["index"] for r in ranked_settings([figures(i, orders[i][:count]) for i in alive], config.generation)[0][:keep]]
        return alive[0]

    rng, picks = np.random.default_rng(0), {"flat": [], "halving": []}
    for draw in range(draws):
        picks["flat"].append(flat(rng))
        picks["halving"].append(halving(rng))
        print("draw", draw, picks["flat"][-1], picks["halving"][-1], flush=True)
    summary = {"final_test_mauve": final.tolist(), "valid_rate": [float(v.mean()) for _, _, v in pools],
               "best_setting_test_mauve": float(final.max()), "draws": draws}
    for rule, chosen in picks.items():
        summary[rule] = {"picks": chosen, "mean_test_mauve": float(final[chosen].mean()),
                         "sd": float(final[chosen].std())}
    (out / "simulation.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("flat", "halving")}))
    print({rule: round(summary[rule]["mean_test_mauve"], 3) for rule in picks})


if __name__ == "__main__":
    command, out, number = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    {"rows": rows, "simulate": simulate}[command](out, number)
