"""Build the configured generator: a soft prompt from a checkpoint, or the hard-prompt baseline."""

from __future__ import annotations

from pathlib import Path

from synth_core.config import DomainConfig
from synth_core.generation.calculator import Calculator
from synth_core.generation.run import Generator
from synth_core.models import Embedder, FrozenLM, load_embedder, load_frozen_lm, use_bf16
from synth_core.sources import TargetSplit, load_target_split
from synth_core.token_limits import resolve_token_limits


def build_generator(config: DomainConfig, checkpoint_dir: Path | None = None, *, lm: FrozenLM | None = None,
                    embedder: Embedder | None = None, targets: TargetSplit | None = None
                    ) -> tuple[Generator, FrozenLM]:
    """Soft-prompt generator when `checkpoint_dir` is given, else the hard-prompt baseline.

    Context vectors and few-shot examples come from the domain's train split only: the held-out
    split is what the quality gate compares against. A domain with an `arithmetic` check samples with
    the calculator (generation/calculator.py), whichever prompt drives the model. An `auto` token cap is
    measured on the train rows (token_limits.py). `generation.bf16` applies to a model this function loads;
    a model passed in is used in the dtype it has.
    """
    from synth_core.generation.hard_prompt import HardPromptGenerator
    from synth_core.generation.soft_prompt_generator import SoftPromptGenerator

    if lm is None:
        lm = load_frozen_lm(config.generator)
        if use_bf16(config.generation.bf16, lm.device, "generation.bf16"):  # a caller's model stays as given
            import torch

            lm.model.to(torch.bfloat16)
    targets = targets or load_target_split(config)
    config = resolve_token_limits(config, lm.tokenizer, targets.train)
    computes = any(check.kind == "arithmetic" and check.calculator for check in config.checks)
    calculator = Calculator(lm.tokenizer) if computes else None
    if checkpoint_dir is None:
        return HardPromptGenerator(lm, targets.train, config.generation, calculator), lm
    embedder = embedder or load_embedder(config.generator)
    context_vectors = embedder.encode_cached(targets.train)
    return SoftPromptGenerator(lm, Path(checkpoint_dir), context_vectors, config.generation, calculator), lm
