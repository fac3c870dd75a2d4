"""Batched sampling from a frozen LM, given prefix embeddings or prompt token ids.

One function serves both the soft-prompt generator (a prefix of soft tokens, all the same length)
and the hard-prompt baseline (left-padded token prompts). Each batch is seeded from the run's seed
and the batch's first global sample index, so a shard reproduces its rows exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from synth_core.config import GenerationConfig
from synth_core.models import FrozenLM


@dataclass
class DecodedBatch:
    texts: list[str]
    new_tokens: list[int]
    finished: list[bool]  # True where the model emitted its end-of-sequence token


@torch.no_grad()
def sample_batch(lm: FrozenLM, settings: GenerationConfig, seed: int, *, inputs_embeds: torch.Tensor | None = None,
                 input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None) -> DecodedBatch:
    """Sample one continuation per row; decode only the new tokens."""
    torch.manual_seed(seed)
    kwargs = {"attention_mask": attention_mask}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds.to(lm.device, lm.model.dtype)
        if attention_mask is None:
            kwargs["attention_mask"] = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=lm.device)
    else:
        kwargs["input_ids"] = input_ids.to(lm.device)
        kwargs["attention_mask"] = attention_mask.to(lm.device)
    eos = lm.tokenizer.eos_token_id
    output = lm.model.generate(**kwargs, do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                               top_k=0, max_new_tokens=settings.max_new_tokens, eos_token_id=eos,
                               pad_token_id=lm.tokenizer.pad_token_id)
    # with inputs_embeds, generate returns only new tokens; with input_ids, prompt + new tokens
    new = output if inputs_embeds is not None else output[:, kwargs["input_ids"].shape[1]:]
    texts, lengths, finished = [], [], []
    for row in new.tolist():
        stop = row.index(eos) if eos in row else len(row)
        texts.append(lm.tokenizer.decode(row[:stop], skip_special_tokens=True).strip())
        lengths.append(stop)
        finished.append(stop < len(row))
    return DecodedBatch(texts, lengths, finished)
