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
  longest row costs more than running the rows alone (50 GSM8K 3-shot prompts, bf16: 97.8 s -> 61.8 s);
- keep the batch full: the next rows come in as rows finish, instead of a fixed batch's last steps
  running nearly empty (gsm8k, 400 rows at batch 50: 1.05x; docs/BENCHMARKS.md, "Keeping the batch full").
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
ADMIT_SHARE = 8  # new rows come in once 1/8 of the room is free: one prefill per few finished rows, not per row
# rows per sampler call, in batches (`generation/run.py`): the sampler keeps `batch_size` rows decoding and admits
# the next rows as others finish, so only the end of each call runs part-empty; more per call, fewer progress updates
BATCHES_PER_CALL = 4


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
        out = last_position_logits(model, inputs_embeds=row[None, start:]) if start < width else None
        logits.append(out.logits if out else None)
        layers.append([(torch.nn.functional.pad(layer.keys, (0, 0, start, 0)),
                        torch.nn.functional.pad(layer.values, (0, 0, start, 0))) for layer in out.cache.layers]
                      if out else None)
    # a row with no tokens (a one-token prompt beside longer ones, prefilled but for its last): zeros, masked out
    some_logits, some_layers = next((out, row) for out, row in zip(logits, layers, strict=True) if row is not None)
    logits = [torch.zeros_like(some_logits) if out is None else out for out in logits]
    layers = [row or [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in some_layers] for row in layers]
    cache = DynamicCache([(torch.cat([row[i][0] for row in layers]), torch.cat([row[i][1] for row in layers]))
                          for i in range(len(layers[0]))])
    return _Prefilled(torch.cat(logits), cache)


class _ForwardStep:
    """A decode step through the model's own forward pass, its KV cache grown by concatenation: the path for
    models `llama_decode.LlamaDecoder` does not reproduce. It takes all its rows at once."""

    def __init__(self, model):
        self.model, self.cache, self.mask = model, None, None

    def admit(self, cache: DynamicCache | None, mask: torch.Tensor) -> None:
        if self.mask is not None:
            raise ValueError("the forward-pass decode step takes every row at once")
        self.cache, self.mask = (cache, mask) if cache is not None else (DynamicCache(), mask[:, :0])

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]

    def step(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(x), 1)], dim=1)
        out = self.model(inputs_embeds=x[:, None], attention_mask=self.mask, position_ids=position.view(-1, 1),
                         cache=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]


def compacting_order(keep: torch.Tensor) -> torch.Tensor:
    """The rows to keep (`keep` true), in the order that moves fewest of them: each stays in place, except that
    the gaps below the kept count are filled by the kept rows above it."""
    kept = keep.nonzero().squeeze(-1)
    order = torch.arange(len(kept), device=keep.device)
    order[~keep[: len(kept)]] = kept[kept >= len(kept)]
    return order


@torch.no_grad()
def sample_batch(lm: FrozenLM, settings: GenerationConfig, seed: int, *, inputs_embeds: torch.Tensor | None = None,
                 input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 stop: re.Pattern[str] | None = None, calculator: Calculator | None = None,
                 live: int | None = None) -> DecodedBatch:
    """Sample one continuation per row; decode only the new tokens, up to (not including) EOS.

    A row also finishes when its text so far matches `stop` (checked every few steps; the caller cuts the text
    there). At most `live` rows (default: all) decode at once: finished rows leave the KV cache, and once
    1/`ADMIT_SHARE` of the room is free the next rows come in (their prompts prefilled), so the steps run nearly
    full instead of trailing off as a fixed batch's rows finish (models that keep their own forward pass take
    every row at once). A row's prompt is prefilled but for its last token, which its first step feeds. A
    `calculator` writes the results of the arithmetic steps the rows start.
    """
    if AUTO in (settings.temperature, settings.top_p):
        raise ValueError("generation.temperature/top_p is 'auto': the decoding must be chosen before sampling "
                         "(generation/auto_decoding.py)")
    if settings.max_new_tokens == AUTO:
        raise ValueError("generation.max_new_tokens is 'auto': it must be measured on the train rows before sampling "
                         "(token_limits.py)")
    model, device, cap = lm.model, lm.device, settings.max_new_tokens
    eos, pad = lm.tokenizer.eos_token_id, lm.tokenizer.pad_token_id
    generator = torch.Generator(device=device).manual_seed(seed)
    embed = model.get_input_embeddings()
    prompts = inputs_embeds.to(device, model.dtype) if inputs_embeds is not None else input_ids.to(device)
    rows_total, width = prompts.shape[:2]
    mask = (attention_mask.to(device) if attention_mask is not None
            else torch.ones(rows_total, width, dtype=torch.long, device=device))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    refills = supports_llama(model)
    room = min(live or rows_total, rows_total) if refills else rows_total
    decoder = LlamaDecoder(model, room, width - 1, cap) if refills else _ForwardStep(model)
    tokens = torch.full((rows_total, cap), pad, dtype=torch.long, device=device)
    written = torch.zeros(rows_total, dtype=torch.long, device=device)  # each row's tokens so far
    lengths = torch.full((rows_total,), cap, dtype=torch.long, device=device)
    finished = torch.zeros(rows_total, dtype=torch.bool, device=device)
    active = torch.zeros(0, dtype=torch.long, device=device)  # the row of each cache row
    x = torch.zeros(0, lm.hidden_size, dtype=model.dtype, device=device)  # each active row's next input
    next_position = torch.zeros(0, dtype=torch.long, device=device)
    admitted = iteration = 0
    if calculator is not None:
        calculator.start(device)
    while True:
        free = room - len(active)
        if admitted < rows_total and (free >= max(1, room // ADMIT_SHARE) or not len(active)):
            group = torch.arange(admitted, min(admitted + free, rows_total), device=device)
            admitted += len(group)
            prompt = prompts[group] if inputs_embeds is not None else embed(prompts[group])
            head = mask[group, :-1]
            decoder.admit(prefill(model, prompt[:, :-1], head, positions[group, :-1]).cache if bool(head.any())
                          else None, head)
            active = torch.cat([active, group])
            x = torch.cat([x, prompt[:, -1]])
            next_position = torch.cat([next_position, positions[group, -1]])
        logits = decoder.step(x, next_position)
        next_position = next_position + 1
        if calculator is not None:
            rows = active.tolist()
            calculator.restrict(logits, rows)
        token = sample_next_token(logits, settings.temperature, settings.top_p, generator)
        if calculator is not None:
            token = calculator.override(token, rows)
        count = written[active]
        tokens[active, count] = token
        count = count + 1
        written[active] = count
        if calculator is not None:
            calculator.observe(tokens, rows, count.tolist(), token)
        done = token == eos
        lengths[active[done]] = count[done] - 1
        iteration += 1
        if stop is not None and iteration % STOP_CHECK_EVERY == 0:
            texts = lm.tokenizer.batch_decode([tokens[row, :n] for row, n in zip(active.tolist(), count.tolist(),
                                                                                 strict=True)],
                                              skip_special_tokens=True)
            matched = torch.tensor([bool(stop.search(text)) for text in texts], device=device) & ~done
            lengths[active[matched]] = count[matched]
            done |= matched
        finished[active[done]] = True
        done |= count == cap  # at the token cap: ends, not finished
        if bool(done.any()):
            order = compacting_order(~done)
            decoder.keep(order)
            active, token, next_position = active[order], token[order], next_position[order]
        if not len(active) and admitted == rows_total:
            break
        x = embed(token)
    texts = [lm.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
             for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True)]
    return DecodedBatch(texts, lengths.tolist(), finished.tolist())
