"""Fixtures for unit tests: a tiny random LM with SmolLM2's real tokenizer, the real MiniLM embedder,
and a small slice of real GSM8K target texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth_core.config import DomainConfig, load_domain
from synth_core.models import Embedder, FrozenLM, load_embedder, load_frozen_lm
from synth_core.sources import TargetSplit, load_target_split

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_config() -> DomainConfig:
    return load_domain(REPO / "domains" / "gsm8k.yaml").with_overrides({
        "generator.model": "embedded:tiny-random",
        "soft_prompt.num_tokens": 4, "soft_prompt.steps": 4, "soft_prompt.learning_rate": 0.1,
        "soft_prompt.batch_size": 4, "soft_prompt.max_length": 48, "soft_prompt.mlp_hidden": 16,
        "soft_prompt.mixture_size": 3, "soft_prompt.eval_rows": 8, "soft_prompt.eval_every": 100,
        "soft_prompt.checkpoint_every": 100, "soft_prompt.log_every": 100,
        "generation.num_samples": 10, "generation.batch_size": 4, "generation.max_new_tokens": 8,
        "generation.shards": 1, "generation.temperature": 1.0, "generation.top_p": 0.95,
    })


@pytest.fixture(scope="session")
def tiny_lm(tiny_config) -> FrozenLM:
    return load_frozen_lm(tiny_config.generator)


@pytest.fixture(scope="session")
def embedder(tiny_config) -> Embedder:
    return load_embedder(tiny_config.generator)


@pytest.fixture(scope="session")
def gsm8k_targets(tiny_config) -> TargetSplit:
    full = load_target_split(tiny_config)
    return TargetSplit(train=full.train[:64], heldout=full.heldout[:16], snapshot_hash=full.snapshot_hash,
                       validation=full.validation[:16])
