"""SoftSRV soft prompts: parameterisations, training and checkpoints."""

from synth_core.softprompt import mc, mpk, nsp  # noqa: F401  (register the variants)
from synth_core.softprompt.base import VARIANT_REGISTRY, SoftPrompt

__all__ = ["VARIANT_REGISTRY", "SoftPrompt", "build_soft_prompt"]


def build_soft_prompt(variant: str, hyperparameters: dict, **init) -> SoftPrompt:
    """A fresh soft prompt of the named variant; `init` may carry token_embeddings and a generator."""
    if variant not in VARIANT_REGISTRY:
        raise ValueError(f"soft_prompt.variant={variant!r}: known variants are {sorted(VARIANT_REGISTRY)}")
    return VARIANT_REGISTRY[variant](**hyperparameters, **init)
