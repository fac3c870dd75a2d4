"""The real embedded SmolLM2-135M: loads from its cache, trains a few steps, generates real text.

Four training steps teach a soft prompt little, so its rows are only checked to be non-empty; the
real-English check uses the few-shot baseline, which runs the same sampler on left-padded prompts
and stops each row at the next "Example N:" header.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from synth_core.config import load_domain
from synth_core.generation.factory import build_generator
from synth_core.generation.run import generate_to_parquet
from synth_core.models import load_embedder, load_frozen_lm
from synth_core.softprompt.training import train_soft_prompt
from synth_core.sources import TargetSplit, load_target_split

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_smollm2_trains_a_few_steps_and_generates_non_empty_text(tmp_path):
    config = load_domain(REPO / "domains" / "boolq.yaml").with_overrides({
        "soft_prompt.steps": 4, "soft_prompt.batch_size": 4, "soft_prompt.eval_rows": 8,
        "soft_prompt.eval_every": 4, "soft_prompt.num_tokens": 8, "soft_prompt.warm_start": "",
        "generation.max_new_tokens": 24, "generation.batch_size": 4,
        "generation.temperature": 1.0, "generation.top_p": 0.95})  # fixed: auto decoding is tested elsewhere
    lm = load_frozen_lm(config.generator)
    assert lm.identity.name == "embedded:smollm2-135m" and lm.hidden_size == 576
    cached = load_frozen_lm(config.generator)
    assert cached.loaded_from_cache and cached.load_seconds < 5
    embedder = load_embedder(config.generator)
    full = load_target_split(config)
    targets = TargetSplit(full.train[:64], full.heldout[:8], full.snapshot_hash)
    result = train_soft_prompt(config, lm, embedder, targets, tmp_path)
    # a pretrained LM scores real English far below uniform (ln 49152 = 10.8)
    assert result.initial_heldout_nll < 6 and result.heldout_nll < result.initial_heldout_nll
    generator, _ = build_generator(config, result.checkpoint_dir, lm=lm, embedder=embedder, targets=targets)
    generate_to_parquet(generator, tmp_path / "s.parquet", num_samples=4, batch_size=4, seed=0)
    rows = pd.read_parquet(tmp_path / "s.parquet")
    assert len(rows) == 4 and rows["text"].str.strip().str.len().gt(0).all()
    baseline, _ = build_generator(config, None, lm=lm, targets=targets)
    generate_to_parquet(baseline, tmp_path / "b.parquet", num_samples=4, batch_size=4, seed=0)
    rows = pd.read_parquet(tmp_path / "b.parquet")
    assert rows["text"].str.contains(r"[A-Za-z]{3,}").all() and not rows["text"].str.contains("Example 4:").any()
