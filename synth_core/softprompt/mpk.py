"""`mpk`: mixture of k basis prompts, mixed per example with weights softmax(W z + b)."""

from __future__ import annotations

import torch
from torch import nn

from synth_core.softprompt.base import SoftPrompt, initial_prompt, register


@register("mpk")
class MixturePrompt(SoftPrompt):
    config_keys = ("mixture_size",)

    def __init__(self, num_tokens: int, hidden_size: int, context_dim: int, mixture_size: int = 8,
                 token_embeddings: torch.Tensor | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_tokens, hidden_size, context_dim)
        self.mixture_size = mixture_size
        shape = (mixture_size, num_tokens, hidden_size)
        init = initial_prompt(shape, token_embeddings, generator)
        self.basis = nn.Parameter(init)
        self.gate = nn.Linear(context_dim, mixture_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.gate(context), dim=-1)  # (B, k)
        return torch.einsum("bk,ktd->btd", weights, self.basis)
