"""`nsp`: non-contextual soft prompt. One t×d matrix shared by every example; the context is ignored."""

from __future__ import annotations

import torch
from torch import nn

from synth_core.softprompt.base import SoftPrompt, initial_prompt, register


@register("nsp")
class NonContextualPrompt(SoftPrompt):
    def __init__(self, num_tokens: int, hidden_size: int, context_dim: int,
                 token_embeddings: torch.Tensor | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_tokens, hidden_size, context_dim)
        init = initial_prompt((num_tokens, hidden_size), token_embeddings, generator)
        self.prompt = nn.Parameter(init)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.prompt.unsqueeze(0).expand(context.shape[0], -1, -1)
