"""Features for the gate: cached sentence embeddings and, as an option, the frozen LM's hidden states.

Only this module touches models, and only when the caller did not inject a feature function, so
the rest of the gate (and its unit tests) runs on precomputed arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from synth_core.config import GeneratorConfig

if TYPE_CHECKING:
    from synth_core.models import FrozenLM

FeatureFn = Callable[[list[str]], np.ndarray]


class CachedFeatures:
    """Wraps a feature function so that each distinct text is featurised once per gate run."""

    def __init__(self, featurize: FeatureFn) -> None:
        self._featurize = featurize
        self._rows: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            features = np.asarray(self._featurize(missing), dtype=np.float32)
            if features.shape[0] != len(missing):
                raise ValueError(f"feature function returned {features.shape[0]} rows for {len(missing)} texts")
            self._rows.update(zip(missing, features, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._rows[t] for t in texts])


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so a dot product is a cosine similarity."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def embedder_features(config: GeneratorConfig) -> tuple[FeatureFn, dict[str, str]]:
    """The configured sentence embedder as a feature function, with its identity."""
    from synth_core.models import load_embedder

    embedder = load_embedder(config)
    return embedder.encode, embedder.identity.to_dict()


def llm_features(config: GeneratorConfig, max_length: int = 256, batch_size: int = 16,
                 lm: FrozenLM | None = None) -> tuple[FeatureFn, dict]:
    """The frozen generator's last hidden state, mean-pooled over real tokens (padding masked out). `lm`: the
    generator `config` names, when the caller has it loaded already (one copy of the weights, not two)."""
    import torch

    from synth_core.models import load_frozen_lm

    lm = lm or load_frozen_lm(config)

    def featurize(texts: list[str]) -> np.ndarray:
        pooled = []
        for start in range(0, len(texts), batch_size):
            batch = lm.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                 truncation=True, max_length=max_length).to(lm.device)
            with torch.no_grad():
                hidden = lm.model(**batch, output_hidden_states=True).hidden_states[-1]  # (batch, seq, d)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
            pooled.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
        return np.concatenate(pooled)

    return featurize, lm.identity.to_dict()
