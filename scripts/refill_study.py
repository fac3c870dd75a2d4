"""Does keeping the batch full pay on the product path, and does it leave the rows' quality alone?

`python scripts/refill_study.py RUN_DIR OUT [REPEATS]`: RUN_DIR is a `synth bench quality --scale small --methods mc`
output (its trained gsm8k `mc` prompt, its seed and the decoding auto chose, from results.json). The quality bench's
candidate rows are sampled twice per repeat, interleaved: in fixed batches of `generation.batch_size` rows, as before
refilling (one batch per sampler call), and in calls of `BATCHES_PER_CALL` batches that admit the next rows as others
finish, as the product samples now. Each run's tokens/s, and each batch's MAUVE against the test split on MiniLM
features and on the generator's hidden states (as the quality bench scores them), go to OUT/refill.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from synth_core.bench.quality import (
    SCALES,
    bench_method_config,
    bench_targets,
    load_bench_models,
    mauve_in_space,
    real_test_texts,
    score_rows,
)
from synth_core.config import load_domain
from synth_core.generation import run as generation_run
from synth_core.generation.factory import build_generator
from synth_core.quality.features import CachedFeatures, llm_features
from synth_core.softprompt.training import CHECKPOINT_DIR
from synth_core.sources import load_target_split
from synth_core.token_limits import resolve_token_limits


def main(run_dir: Path, out: Path, repeats: int) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    domain = results["domains"][0]
    chosen = domain["methods"]["mc"]["decoding"]
    seed = results["seed"]
    config = bench_method_config(load_domain(Path(f"domains/{domain['domain']}.yaml")), SCALES["small"], "mc", seed)
    config = config.with_overrides(
        {"generation.temperature": chosen["temperature"], "generation.top_p": chosen["top_p"]})
    lm, sampler_lm, embedder = load_bench_models(config)
    targets = bench_targets(load_target_split(config), SCALES["small"])
    config = resolve_token_limits(config, lm.tokenizer, targets.train)
    test = real_test_texts(config, SCALES["small"].test_rows)
    generator, _ = build_generator(config, run_dir / domain["domain"] / "mc" / CHECKPOINT_DIR, lm=sampler_lm,
                                   embedder=embedder, targets=targets)
    featurize = CachedFeatures(llm_features(config.generator, lm=lm)[0])
    settings, report = config.generation, {"decoding": chosen, "seed": seed, "runs": []}
    out.mkdir(parents=True, exist_ok=True)
    for repeat in range(repeats):
        for mode, batches_per_call in (("fixed", 1), ("refilled", generation_run.BATCHES_PER_CALL)):
            path = out / f"{mode}-{repeat}.parquet"
            default, generation_run.BATCHES_PER_CALL = generation_run.BATCHES_PER_CALL, batches_per_call
            try:
                started = time.perf_counter()
                generated = generation_run.generate_to_parquet(generator, path, num_samples=settings.candidate_rows,
                                                               batch_size=settings.batch_size, seed=settings.seed)
                seconds = time.perf_counter() - started
            finally:
                generation_run.BATCHES_PER_CALL = default
            texts = pd.read_parquet(path)["text"].tolist()
            metrics, kept = score_rows(config, texts, targets.train, test, embedder, {}, config.checks)
            run = {"mode": mode, "repeat": repeat, "seconds": round(seconds, 1), "new_tokens": generated.new_tokens,
                   "tokens_per_second": round(generated.new_tokens / seconds, 1),
                   "finished_fraction": round(generated.finished_fraction, 4), "kept": len(kept),
                   "mauve": metrics.get("mauve"), "mauve_interval": metrics.get("mauve_interval"),
                   "mauve_reference": metrics.get("mauve_reference"),
                   "mauve_llm": mauve_in_space(config, kept, targets.train, test, featurize)}
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
    (out / "refill.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
