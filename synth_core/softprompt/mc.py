"""`mc`: MLP-contextual prompt. An MLP maps the context vector to a per-example t×d prompt.

The output is a learned base prompt plus the MLP's offset; the offset starts small, so training
begins at the scale of real token embeddings and learns how context moves the prompt.
"""

from __future__ import annotations

import torch
from torch import nn

from synth_core.softprompt.base import SoftPrompt, initial_prompt, register


@register("mc")
class MLPContextualPrompt(SoftPrompt):
    config_keys = ("mlp_hidden",)

    def __init__(self, num_tokens: int, hidden_size: int, context_dim: int, mlp_hidden: int = 256,
                 token_embeddings: torch.Tensor | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_tokens, hidden_size, context_dim)
        self.mlp_hidden = mlp_hidden
        init = initial_prompt((num_tokens, hidden_size), token_embeddings, generator)
        self.base = nn.Parameter(init)
        self.mlp = nn.Sequential(nn.Linear(context_dim, mlp_hidden), nn.GELU(),
                                 nn.Linear(mlp_hidden, num_tokens * hidden_size))
        scale = float(init.std()) if token_embeddings is not None else 1.0
        with torch.no_grad():
            self.mlp[2].weight.mul_(0.1 * scale)
            self.mlp[2].bias.zero_()

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        offset = self.mlp(context).view(-1, self.num_tokens, self.hidden_size)
        return self.base.unsqueeze(0) + offset
