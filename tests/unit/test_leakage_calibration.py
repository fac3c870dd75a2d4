"""The leakage criterion on every seed domain, with the real MiniLM embedder and real rows.

Real test-file rows copy train rows by chance about as often as real held-out rows do (BoolQ's short
questions do so at a few percent), so they must pass; verbatim, upper-cased and 10% planted copies of
train rows must fail. Sizes are cut (400 train rows, up to 300 held-out and batch rows) to keep the test
fast; `synth bench leakage` runs the same check at full size (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synth_core.bench.leakage import EXPECTED, domain_leakage
from synth_core.bench.quality import real_test_texts
from synth_core.config import load_domain
from synth_core.models import load_embedder
from synth_core.sources import TargetSplit, load_target_split

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


# Batch and held-out rows per domain: MBPP's 93 held-out rows give its reference rate a wide interval,
# so its batch needs 300 rows for 10% planted copies to fail rather than go to review.
BATCH_ROWS = {"boolq": 300, "gsm8k": 150, "mbpp": 300}


@pytest.mark.parametrize("domain", sorted(BATCH_ROWS))
def test_real_rows_pass_and_planted_copies_fail(domain):
    # every non-held-out row as train rows: MBPP has few rows, and the calibration depends on how many
    config = load_domain(REPO / "domains" / f"{domain}.yaml").with_overrides({"source.validation_fraction": 0.0})
    split = load_target_split(config)
    rows = BATCH_ROWS[domain]
    targets = TargetSplit(split.train[:400], split.heldout[:rows], split.snapshot_hash)
    embedder = load_embedder(config.generator)
    result = domain_leakage(config, targets, real_test_texts(config, rows=rows),
                            lambda texts: embedder.encode(texts, batch_size=16))
    outcomes = {name: batch["outcome"] for name, batch in result["batches"].items()}
    assert outcomes == EXPECTED, {name: batch["reason"] for name, batch in result["batches"].items()}
    planted = result["batches"]["10% planted copies"]["synthetic"]
    assert planted["count"] >= rows // 10 and planted["rows"] >= rows - 5  # a few rows fail the PII/length screens
