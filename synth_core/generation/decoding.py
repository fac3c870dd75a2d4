"""Batched sampling from a frozen LM, given prefix embeddings or (left-padded) prompt token ids.

One loop serves both the soft-prompt generator (a prefix of soft tokens) and the hard-prompt
baseline. It is a plain KV-cached decode loop rather than `generate`, because that lets us
- draw from a per-batch `torch.Generator` (seeded from the run's seed and the batch's first global
  sample index), so a shard reproduces its rows exactly without touching global RNG state;
- do exact nucleus (top-p) sampling without sorting or ranking the 49k-token vocabulary
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

DRAW_BLOCK = 256  # columns per block of the two-level draw (`_draw`)
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

    No row sorts or ranks the vocabulary. Every row draws from the whole distribution (`_draw`); with top_p
    below 1 a draw is kept when the tokens more likely than it hold less than top_p of the mass (exactly the
    nucleus's members), and the rows whose draw fell outside draw again. The nucleus holds at least top_p of
    the mass, so each round keeps at least that share of the rows (1.1 rounds at most on average at 0.9).
    At 64 rows of SmolLM2's 49k columns a call costs 6-10 ms; the top-256 shortcut it replaced (a `topk` over
    the vocabulary, then a float64 cumulative sum over it) cost 15-47 ms (docs/BENCHMARKS.md, throughput).
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    tokens = _draw(probs, generator)
    if top_p >= 1.0:
        return tokens
    outside = _outside_nucleus(probs, tokens, top_p)
    while bool(outside.any()):
        again = outside.nonzero().squeeze(-1)
        rows = probs[again]
        tokens[again] = redrawn = _draw(rows, generator)
        outside[again] = _outside_nucleus(rows, redrawn, top_p)
    return tokens


def _outside_nucleus(probs: torch.Tensor, tokens: torch.Tensor, top_p: float) -> torch.Tensor:
    """Whether each row's token lies outside its nucleus. Only rows whose token has at most 1 - top_p of the
    mass are scanned: the tokens more likely than any other draw hold less than top_p, so it is inside."""
    drawn = probs.gather(-1, tokens[:, None])
    outside = torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)
    unsure = (drawn.squeeze(-1) <= 1 - top_p + 1e-6).nonzero().squeeze(-1)  # margin: the softmax sums to 1 +- rounding
    if len(unsure):
        rows = probs[unsure]
        outside[unsure] = (rows * (rows > drawn[unsure])).sum(-1) >= top_p
    return outside


def _draw(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One column per row, in proportion to the row's non-negative weights, from one uniform number per row.

    The number is inverted in two levels: a block of `DRAW_BLOCK` columns by the blocks' summed weights, then
    a column within that block, so no cumulative sum spans the vocabulary. Rounding is kept off the ends: a
    zero-weight column is never drawn.
    """
    rows, columns = weights.shape
    pad = -columns % DRAW_BLOCK
    blocks = (torch.nn.functional.pad(weights, (0, pad)) if pad else weights).view(rows, -1, DRAW_BLOCK)
    block_mass = blocks.sum(-1, dtype=torch.float64)
    cumulative = block_mass.cumsum(-1)
    total = cumulative[:, -1:]
    point = torch.minimum(torch.rand(rows, 1, generator=generator, dtype=torch.float64, device=weights.device)
                          * total, total * (1 - 1e-12))
    # right=True: the first entry whose cumulative weight exceeds the point, so zero-weight entries are never hit
    block = torch.searchsorted(cumulative, point, right=True)
    within = blocks[torch.arange(rows, device=weights.device), block.squeeze(-1)].double().cumsum(-1)
    offset = point - cumulative.gather(-1, block) + block_mass.gather(-1, block)
    offset = torch.minimum(offset.clamp(min=0), within[:, -1:] * (1 - 1e-12))
    column = torch.searchsorted(within, offset, right=True)
    return (block * DRAW_BLOCK + column).squeeze(-1)


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
