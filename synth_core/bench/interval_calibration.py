"""Is the gate's MAUVE interval as wide as MAUVE really varies? One domain's real rows, no model but the embedder.

Compares, at one sample size, the spread of MAUVE over batches whose both sides are redrawn from real
rows (the sampling spread the interval should reflect) with the spread of the gate's half-samples of
one such batch, unscaled and scaled by HALF_SAMPLE_SCALE. Prints one JSON object.

    python -m synth_core.bench.interval_calibration domains/boolq.yaml --rows 200 --batches 20
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from synth_core.quality.mauve_score import (
    HALF_SAMPLE_SCALE,
    MauveSettings,
    calibrated_mauve,
    mauve_over_seeds,
)


def calibrate(features: np.ndarray, rows: int, batches: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    settings = MauveSettings(max(2, round(rows / 10)), 5.0, (0, 1, 2), rows)
    redrawn = []
    for _ in range(batches):
        chosen = rng.choice(len(features), 2 * rows, replace=False)
        redrawn.append(mauve_over_seeds(features[chosen[:rows]], features[chosen[rows:]], settings).mean)
    chosen = rng.choice(len(features), 3 * rows, replace=False)
    one = calibrated_mauve(*(features[chosen[i * rows:(i + 1) * rows]] for i in range(3)), resamples=50)
    halves = np.array(one.bootstrap.synthetic)
    return {"rows": rows, "batches": batches, "redrawn_mean": float(np.mean(redrawn)),
            "redrawn_sd": float(np.std(redrawn)), "half_sample_sd": float(np.std(halves)),
            "half_sample_sd_scaled": float(np.std(halves) * HALF_SAMPLE_SCALE)}


def main() -> None:
    from synth_core.bench.quality import real_test_texts
    from synth_core.config import load_domain
    from synth_core.models import load_embedder
    from synth_core.sources import load_target_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domain_yaml")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    config = load_domain(args.domain_yaml)
    split = load_target_split(config)
    texts = [*split.train, *split.heldout, *real_test_texts(config, 10_000)]
    features = load_embedder(config.generator).encode(texts)
    print(json.dumps({"domain": config.name, **calibrate(features, args.rows, args.batches)}))


if __name__ == "__main__":
    main()
