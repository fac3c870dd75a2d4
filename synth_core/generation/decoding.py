"""Batched sampling from a frozen LM, given prefix embeddings or (left-padded) prompt token ids.

One loop serves both the soft-prompt generator (a prefix of soft tokens) and the hard-prompt
baseline. It is a plain KV-cached decode loop rather than `generate`, because that lets us
- draw from a per-batch `torch.Generator` (seeded from the run's seed and the batch's first global
  sample index), so a shard reproduces its rows exactly without touching global RNG state;
- do exact nucleus (top-p) sampling without ever sorting the 49k-token vocabulary
  (`sample_next_token`);
- compute logits for the last position only, and run the whole loop in the model's dtype (bf16
  unless `generation.bf16` is off or the device lacks native bf16);
- decode a Llama-shaped model over a KV cache allocated once for the longest row (`llama_decode.py`)
  instead of its forward pass, which copies the whole cache at every step;
- prefill left-padded prompts one row at a time, unpadded, into one left-padded KV cache: a batch of
  few-shot prompts of 370-800 tokens spends most of its time there, and padded attention over the
  longest row costs more than running the rows alone (50 GSM8K 3-shot prompts, bf16: 97.8 s -> 61.8 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from synth_core.config import AUTO, GenerationConfig
from synth_core.generation.calculator import Calculator
from synth_core.generation.llama_decode import LlamaDecoder
from synth_core.generation.llama_decode import supports as supports_llama
from synth_core.models import FrozenLM

NUCLEUS_CANDIDATES = 256
# config settings with which a model's forward does more to the output layer's logits than the layer itself
# (Gemma's soft-capping, Cohere's and Granite's scaling): such models keep their own forward pass
OUTPUT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
STOP_CHECK_EVERY = 8  # steps between stop-pattern checks: decoding every step would cost more than it saves


@dataclass
class DecodedBatch:
    texts: list[str]
    new_tokens: list[int]
    finished: list[bool]  # True where the model emitted its end-of-sequence token or matched the stop pattern


def sample_next_token(logits: torch.Tensor, temperature: float, top_p: float,
                      generator: torch.Generator) -> torch.Tensor:
    """One token id per row from softmax(logits / temperature), restricted to the top-p nucleus.

    No row ever sorts the vocabulary. A row whose nucleus lies within its top 256 candidates draws
    among them; a wider nucleus (a flat distribution) is drawn by rejection: draw from the whole
    distribution, keep the draw when the tokens more likely than it hold less than top_p of the mass
    (exactly the nucleus's members), else draw again; at least top_p of the draws are kept. With top_p
    of 1 every row draws from the whole distribution. Every draw inverts a cumulative sum with one
    uniform number, far cheaper than a vocabulary's worth of noise.
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return _draw(probs, generator)
    tokens = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    values, ids = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[1]), dim=-1)  # sorted, descending
    covered = values.sum(-1) >= top_p
    if bool(covered.any()):
        values, ids = values[covered], ids[covered]
        weights = values * ((values.cumsum(-1) - values) < top_p)  # the smallest prefix reaching top_p
        tokens[covered] = ids.gather(-1, _draw(weights, generator)[:, None]).squeeze(-1)
    wide = (~covered).nonzero().squeeze(-1)
    if len(wide):
        tokens[wide] = _draw_from_wide_nucleus(probs[wide], top_p, generator)
    return tokens


def _draw(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One column per row, in proportion to the row's non-negative weights (inverse of the cumulative sum)."""
    cumulative = weights.double().cumsum(-1)
    uniform = torch.rand(weights.shape[0], 1, generator=generator, dtype=torch.float64, device=weights.device)
    # right=True: the first column whose cumulative weight exceeds the draw, so zero-weight columns are never hit
    return torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True).squeeze(-1).clamp(
        max=weights.shape[1] - 1)


def _draw_from_wide_nucleus(probs: torch.Tensor, top_p: float, generator: torch.Generator) -> torch.Tensor:
    tokens = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    pending = torch.arange(probs.shape[0], device=probs.device)
    while len(pending):
        rows = probs[pending]
        draws = _draw(rows, generator)
        drawn = rows.gather(-1, draws[:, None])
        in_nucleus = (rows * (rows > drawn)).sum(-1) < top_p
        tokens[pending[in_nucleus]] = draws[in_nucleus]
        pending = pending[~in_nucleus]
    return tokens


@dataclass
class _Prefilled:
    logits: torch.Tensor
    cache: DynamicCache


def last_position_logits(model, **inputs) -> _Prefilled:
    """The forward pass's last-position logits and its KV cache.

    The output layer runs on a contiguous copy of the last hidden state: `logits_to_keep` hands it a
    strided view, which bf16 matmul on the CPU serves by copying the 49k x 576 output matrix once per
    row (8.4 s for a batch of 64, more than the rest of the batch's decoding)."""
    if any(getattr(model.config, name, None) for name in OUTPUT_TRANSFORMS):
        out = model(**inputs, use_cache=True, logits_to_keep=1)
        return _Prefilled(out.logits, out.cache)
    out = model.get_decoder()(**inputs, use_cache=True)
    return _Prefilled(model.get_output_embeddings()(out.last_hidden_state[:, -1:].contiguous()), out.cache)


def prefill(model, inputs_embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> _Prefilled:
    """The prompt's forward pass: last-position logits and the KV cache, rows left-padded as in `mask`."""
    if bool(mask.all()):
        return last_position_logits(model, inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions)
    width = mask.shape[1]
    logits, layers = [], []
    for row, row_mask in zip(inputs_embeds, mask, strict=True):
        start = width - int(row_mask.sum())
        out = last_position_logits(model, inputs_embeds=row[None, start:])
        logits.append(out.logits)
        layers.append([(torch.nn.functional.pad(layer.keys, (0, 0, start, 0)),
                        torch.nn.functional.pad(layer.values, (0, 0, start, 0))) for layer in out.cache.layers])
    cache = DynamicCache([(torch.cat([row[i][0] for row in layers]), torch.cat([row[i][1] for row in layers]))
                          for i in range(len(layers[0]))])
    return _Prefilled(torch.cat(logits), cache)


class _ForwardStep:
    """A decode step through the model's own forward pass, its KV cache grown by concatenation: the path for
    models `llama_decode.LlamaDecoder` does not reproduce."""

    def __init__(self, model, cache: DynamicCache, mask: torch.Tensor):
        self.model, self.cache, self.mask = model, cache, mask

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]

    def step(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(token), 1)], dim=1)
        out = self.model(input_ids=token[:, None], attention_mask=self.mask, position_ids=position.view(-1, 1),
                         cache=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]


@torch.no_grad()
def sample_batch(lm: FrozenLM, settings: GenerationConfig, seed: int, *, inputs_embeds: torch.Tensor | None = None,
                 input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 stop: re.Pattern[str] | None = None, calculator: Calculator | None = None) -> DecodedBatch:
    """Sample one continuation per row; decode only the new tokens, up to (not including) EOS.

    A row also finishes when its text so far matches `stop` (checked every few steps; the caller
    cuts the text there). Finished rows leave the batch and its KV cache, so a batch costs what its
    rows need rather than rows x its longest row. A `calculator` writes the results of the arithmetic
    steps the rows start.
    """
    if AUTO in (settings.temperature, settings.top_p):
        raise ValueError("generation.temperature/top_p is 'auto': the decoding must be chosen before sampling "
                         "(generation/auto_decoding.py)")
    if settings.max_new_tokens == AUTO:
        raise ValueError("generation.max_new_tokens is 'auto': it must be measured on the train rows before sampling "
                         "(token_limits.py)")
    model, device = lm.model, lm.device
    eos, pad = lm.tokenizer.eos_token_id, lm.tokenizer.pad_token_id
    generator = torch.Generator(device=device).manual_seed(seed)
    if inputs_embeds is None:
        inputs_embeds = model.get_input_embeddings()(input_ids.to(device))
    inputs_embeds = inputs_embeds.to(device, model.dtype)
    batch, prefix_len = inputs_embeds.shape[:2]
    mask = (attention_mask.to(device) if attention_mask is not None
            else torch.ones(batch, prefix_len, dtype=torch.long, device=device))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    out = prefill(model, inputs_embeds, mask, positions)
    logits = out.logits[:, -1]
    decoder = (LlamaDecoder(model, out.cache, mask, settings.max_new_tokens) if supports_llama(model)
               else _ForwardStep(model, out.cache, mask))
    next_position = positions[:, -1:] + 1
    tokens = torch.full((batch, settings.max_new_tokens), pad, dtype=torch.long, device=device)
    lengths = torch.full((batch,), settings.max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    active = torch.arange(batch, device=device)  # the batch row of each row still being decoded
    if calculator is not None:
        calculator.start(device)
    for step in range(settings.max_new_tokens):
        if calculator is not None:
            rows = active.tolist()
            calculator.restrict(logits, rows)
        token = sample_next_token(logits, settings.temperature, settings.top_p, generator)
        if calculator is not None:
            token = calculator.override(token, rows)
        tokens[active, step] = token
        if calculator is not None:
            calculator.observe(tokens, rows, step, token)
        done = token == eos
        lengths[active[done]] = step
        if stop is not None and (step + 1) % STOP_CHECK_EVERY == 0:
            texts = lm.tokenizer.batch_decode(tokens[active, : step + 1], skip_special_tokens=True)
            matched = torch.tensor([bool(stop.search(text)) for text in texts], device=device) & ~done
            lengths[active[matched]] = step + 1
            done |= matched
        finished[active[done]] = True
        if bool(done.all()) or step + 1 == settings.max_new_tokens:
            break
        if bool(done.any()):
            keep = ~done
            decoder.keep(keep.nonzero().squeeze(-1))
            active, token, next_position = active[keep], token[keep], next_position[keep]
        logits = decoder.step(token, next_position)
        next_position = next_position + 1
    texts = [lm.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
             for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True)]
    return DecodedBatch(texts, lengths.tolist(), finished.tolist())
