"""Sample targeted text from a trained soft prompt, conditioned on target examples' context vectors.

Sample j takes its context vector from target example j mod n (round robin) or a seeded draw, plus
optional Gaussian noise; both are keyed by j, so results do not depend on sharding or batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synth_core.config import GenerationConfig
from synth_core.generation.calculator import Calculator
from synth_core.generation.decoding import DecodedBatch, sample_batch
from synth_core.models import FrozenLM
from synth_core.softprompt.checkpoint import load_checkpoint


class SoftPromptGenerator:
    def __init__(self, lm: FrozenLM, checkpoint_dir: Path, context_vectors: np.ndarray,
                 settings: GenerationConfig, calculator: Calculator | None = None) -> None:
        self.lm, self.settings, self.calculator = lm, settings, calculator
        self.soft_prompt, self.meta = load_checkpoint(checkpoint_dir, lm.device)
        self.soft_prompt.eval()
        if self.soft_prompt.hidden_size != lm.hidden_size:
            raise ValueError(f"checkpoint {checkpoint_dir} was trained for hidden size "
                             f"{self.soft_prompt.hidden_size}, the generator has {lm.hidden_size}")
        self.context_vectors = context_vectors
        self.variant = self.meta.variant
        self.checkpoint_hash = self.meta.theta_sha256

    def context_index(self, sample_index: int, seed: int) -> int:
        n = len(self.context_vectors)
        if self.settings.context_sampling == "round_robin":
            return sample_index % n
        return int(np.random.default_rng([seed, sample_index]).integers(n))

    def context_for(self, sample_index: int, seed: int) -> np.ndarray:
        vector = self.context_vectors[self.context_index(sample_index, seed)]
        if self.settings.context_noise > 0:
            noise = np.random.default_rng([seed, sample_index, 1]).normal(size=vector.shape)
            vector = vector + self.settings.context_noise * noise.astype(np.float32)
        return vector

    @torch.no_grad()
    def sample(self, sample_indices: list[int], seed: int) -> tuple[DecodedBatch, list[int]]:
        context = torch.from_numpy(np.stack([self.context_for(j, seed) for j in sample_indices]))
        prefix = self.soft_prompt(context.to(self.lm.device))  # (B, t, d)
        batch = sample_batch(self.lm, self.settings, seed * 1_000_003 + sample_indices[0], inputs_embeds=prefix,
                             calculator=self.calculator, live=self.settings.batch_size)
        return batch, [self.context_index(j, seed) for j in sample_indices]
