"""The soft-prompt interface: a small trainable module that maps context vectors to soft tokens.

Every parameterisation takes context vectors z (batch, context_dim) from the frozen sentence
embedder and returns soft tokens (batch, num_tokens, hidden_size) that are fed to the frozen LM
as `inputs_embeds`. Adding a parameterisation is one module that subclasses `SoftPrompt` and
registers itself with `@register("name")`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn

VARIANT_REGISTRY: dict[str, type[SoftPrompt]] = {}


def register(name: str) -> Callable[[type[SoftPrompt]], type[SoftPrompt]]:
    def decorate(cls: type[SoftPrompt]) -> type[SoftPrompt]:
        cls.variant = name
        VARIANT_REGISTRY[name] = cls
        return cls

    return decorate


def initial_prompt(shape: tuple[int, ...], token_embeddings: torch.Tensor | None,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Rows of the LM's real token embeddings, drawn at random, so soft tokens start at their scale;
    zeros when no embeddings are given (the module is about to be loaded from a checkpoint)."""
    if token_embeddings is None:
        return torch.zeros(shape)
    rows = torch.randint(0, token_embeddings.shape[0], (int(torch.tensor(shape[:-1]).prod()),),
                         generator=generator)
    return token_embeddings[rows].detach().float().clone().reshape(shape)


class SoftPrompt(nn.Module, ABC):
    """Base class: holds the shape; subclasses implement `forward(context) -> soft tokens`."""

    variant: str = ""
    # names of SoftPromptConfig fields this variant takes as constructor arguments
    config_keys: tuple[str, ...] = ()

    def __init__(self, num_tokens: int, hidden_size: int, context_dim: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.hidden_size = hidden_size
        self.context_dim = context_dim

    @abstractmethod
    def forward(self, context: torch.Tensor) -> torch.Tensor:  # (B, context_dim) -> (B, t, d)
        """Soft tokens for a batch of context vectors."""

    def hyperparameters(self) -> dict[str, int]:
        """Everything needed, besides the weights, to rebuild this module (saved in checkpoints)."""
        shape = {"num_tokens": self.num_tokens, "hidden_size": self.hidden_size, "context_dim": self.context_dim}
        return {**shape, **{key: getattr(self, key) for key in self.config_keys}}
