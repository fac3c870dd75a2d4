"""`synth bench leakage`: does the gate's leakage criterion pass real data and fail copies, per domain?

For each domain, batches go through the gate's own filters and leakage calibration (quality/gate.py)
against the domain's real train and held-out rows:

- `real test rows`: the domain's separate test file, never seen by training: must pass;
- `verbatim copies`, `upper-cased copies`: train rows as they are, and upper-cased: must fail;
- `10% planted copies`: the real test rows with every tenth replaced by a train row: must fail.

The first is the criterion's false-rejection check; the others its detection check.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from synth_core.config import DomainConfig
from synth_core.quality.decision import leakage_criterion
from synth_core.quality.features import CachedFeatures, FeatureFn
from synth_core.quality.gate import filter_and_measure_leakage
from synth_core.quality.leakage import leakage_metrics
from synth_core.sources import TargetSplit

log = logging.getLogger(__name__)

EXPECTED = {"real test rows": "pass", "verbatim copies": "fail", "upper-cased copies": "fail",
            "10% planted copies": "fail"}


def probe_batches(train: list[str], real_test: list[str]) -> dict[str, list[str]]:
    """The batches named in EXPECTED, each as long as `real_test`."""
    copies = [train[i % len(train)] for i in range(len(real_test))]
    planted = [copies[i] if i % 10 == 0 else row for i, row in enumerate(real_test)]
    return {"real test rows": real_test, "verbatim copies": copies,
            "upper-cased copies": [row.upper() for row in copies], "10% planted copies": planted}


def domain_leakage(config: DomainConfig, targets: TargetSplit, real_test: list[str], embed: FeatureFn) -> dict:
    """The leakage criterion's outcome and rates for each probe batch of one domain."""
    embed = CachedFeatures(embed)
    results = {}
    for name, batch in probe_batches(targets.train, real_test).items():
        _, leakage = filter_and_measure_leakage(batch, targets.train, targets.heldout, config.gate, embed)
        metrics = leakage_metrics(leakage)
        criterion = leakage_criterion(metrics, config.gate)
        results[name] = {"outcome": criterion.outcome, "expected": EXPECTED[name], "reason": criterion.reason,
                         **leakage.to_dict()}
        log.info("%s %s: %s", config.name, name, criterion.reason)
    return {"domain": config.name, "train_rows": len(targets.train), "heldout_rows": len(targets.heldout),
            "batch_rows": len(real_test), "batches": results,
            "all_as_expected": all(r["outcome"] == r["expected"] for r in results.values())}


def run_leakage_bench(domains: list[str], domains_dir: Path, out: Path) -> dict:
    """Every domain at full size (all train and held-out rows, the whole test file); results.json in `out`."""
    from synth_core.bench.quality import real_test_texts
    from synth_core.config import load_domain
    from synth_core.models import load_embedder
    from synth_core.sources import load_target_split

    results = []
    for domain in domains:
        config = load_domain(domains_dir / f"{domain}.yaml")
        embedder = load_embedder(config.generator)
        results.append(domain_leakage(config, load_target_split(config), real_test_texts(config, rows=10_000),
                                      embedder.encode_cached))
    out.mkdir(parents=True, exist_ok=True)
    summary = {"domains": results, "all_as_expected": all(r["all_as_expected"] for r in results)}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
