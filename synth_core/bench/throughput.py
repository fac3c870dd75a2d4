"""Throughput benchmark: our generator against plain `transformers` `generate`, in one run.

Every figure is measured in the same process on the same machine, so the ratios hold even when
the machine is shared and noisy: generation tokens/s at several batch sizes (same soft-prefix length,
same decoding, same number of new tokens), the prefill of a batch of left-padded prompts of unequal
length (the few-shot baseline's cost), one training step, training on real GSM8K rows with random
batches against length-pooled ones, model load cold and cached, the fraction of this machine's
measured matmul peak that generation reaches, the decode step with either attention the sampler
can use (it picks one by timing attention alone on the machine), and drawing the next token from
real logits, ours against `generate`'s warpers.

Generation is compared like with like: ours and plain `generate` with the weights in fp32, then both
in bf16, and each at its best dtype. Every tensor lives on the model's device and every timing
synchronises CUDA, so the same bench runs on a GPU worker.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from synth_core.config import GenerationConfig, GeneratorConfig
from synth_core.generation.decoding import BATCHES_PER_CALL, prefill, sample_batch, sample_next_token
from synth_core.generation.llama_decode import LlamaDecoder, supports
from synth_core.models import FrozenLM, load_frozen_lm

BENCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

log = logging.getLogger(__name__)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timing covers the kernels and not only their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Seconds `fn(*args)` takes on `device`, and what it returned."""
    synchronize(device)
    started = time.perf_counter()
    out = fn(*args)
    synchronize(device)
    return time.perf_counter() - started, out


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, size: int = 1024, repeats: int = 10,
                       rounds: int = 5) -> float:
    """The measured matmul rate of `device` in `dtype`: the roofline that generation's rate is read against.

    The best of `rounds` timings of `repeats` matmuls, so one slow moment does not lower the roofline. The rate
    itself moves on shared machines (a 2-core Xeon read 336, then 995, then 361-387 bf16 GFLOP/s within an
    hour): a share of it compares only with figures from the same run."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    torch.mm(a, b)
    seconds = min(timed(device, lambda: [torch.mm(a, b) for _ in range(repeats)])[0] for _ in range(rounds))
    return 2 * size**3 * repeats / seconds / 1e9


def _prefix(lm: FrozenLM, batch: int, num_tokens: int) -> torch.Tensor:
    table = lm.model.get_input_embeddings().weight.detach()
    rows = torch.randint(0, table.shape[0], (batch * num_tokens,), generator=torch.Generator().manual_seed(0))
    return table[rows.to(table.device)].reshape(batch, num_tokens, -1)


@torch.no_grad()
def plain_generate_tokens_per_second(lm: FrozenLM, batch: int, settings: GenerationConfig, num_tokens: int) -> float:
    """The reference: HF generate in the model's dtype, the soft prefix as inputs_embeds, forced to full length."""
    prefix = _prefix(lm, batch, num_tokens)
    mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
    torch.manual_seed(0)
    seconds, _ = timed(lm.device, lambda: lm.model.generate(
        inputs_embeds=prefix, attention_mask=mask, do_sample=True, temperature=settings.temperature,
        top_p=settings.top_p, top_k=0, max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.max_new_tokens, pad_token_id=lm.tokenizer.pad_token_id))
    return batch * settings.max_new_tokens / seconds


def ours_tokens_per_second(lm: FrozenLM, batch: int, settings: GenerationConfig, num_tokens: int) -> float:
    """Our sampler in the model's dtype, counting the tokens it really produced."""
    prefix = _prefix(lm, batch, num_tokens)
    seconds, out = timed(lm.device, lambda: sample_batch(lm, settings, seed=0, inputs_embeds=prefix))
    return sum(out.new_tokens) / seconds


def generation_like_with_like(lm: FrozenLM, batch: int, settings: GenerationConfig, num_tokens: int, repeats: int,
                              peak: dict[str, float], params: int) -> dict:
    """Ours against plain `generate` at one batch size, both in each of `BENCH_DTYPES`, then each at its best
    dtype; best of `repeats`, interleaved, so every figure saw the same machine. The model is left in its
    original dtype."""
    original = lm.model.dtype
    runs: dict[str, dict[str, list[float]]] = {name: {"plain": [], "ours": []} for name in BENCH_DTYPES}
    for _ in range(repeats):
        for name, dtype in BENCH_DTYPES.items():
            lm.model.to(dtype)
            runs[name]["plain"].append(plain_generate_tokens_per_second(lm, batch, settings, num_tokens))
            runs[name]["ours"].append(ours_tokens_per_second(lm, batch, settings, num_tokens))
    lm.model.to(original)
    row: dict = {"batch": batch}
    for name, figures in runs.items():
        plain, ours = max(figures["plain"]), max(figures["ours"])
        row[name] = {"plain_tok_s": plain, "ours_tok_s": ours, "ours_vs_plain": ours / plain,
                     "plain_fraction_of_peak": plain * 2 * params / 1e9 / peak[name],
                     "ours_fraction_of_peak": ours * 2 * params / 1e9 / peak[name]}
    plain_dtype = max(BENCH_DTYPES, key=lambda name: row[name]["plain_tok_s"])
    ours_dtype = max(BENCH_DTYPES, key=lambda name: row[name]["ours_tok_s"])
    row["best"] = {"plain_dtype": plain_dtype, "ours_dtype": ours_dtype,
                   "ours_vs_plain": row[ours_dtype]["ours_tok_s"] / row[plain_dtype]["plain_tok_s"]}
    return row


@torch.no_grad()
def refilled_batches(lm: FrozenLM, texts: list[str], batch: int, calls: int, settings: GenerationConfig,
                     repeats: int, prompt_tokens: int = 24) -> dict:
    """Ours on `calls` batches of rows that end at their own lengths, in the sampling dtype the product uses:
    one fixed batch of `batch` rows at a time (each call's steps trail off as its rows finish) against one call
    that keeps `batch` rows decoding and admits the next as rows finish (`sample_batch(live=batch)`). The rows
    continue real rows' first `prompt_tokens` tokens (left-padded), so their lengths vary as real ones do; the
    two runs draw different tokens, so tokens/s and the mean row length are reported for each. Best of
    `repeats`, interleaved."""
    from synth_core.models import use_bf16

    original, dtype = lm.model.dtype, torch.bfloat16 if use_bf16(True, lm.device, "bench bf16") else torch.float32
    lm.model.to(dtype)
    tokenizer = lm.tokenizer
    tokenizer.padding_side = "left"
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"][:prompt_tokens] for text in texts[: batch * calls]]
    prompts = tokenizer.pad({"input_ids": rows}, return_tensors="pt")

    def fixed() -> list[int]:
        return [n for start in range(0, len(rows), batch)
                for n in sample_batch(lm, settings, start, input_ids=prompts["input_ids"][start : start + batch],
                                      attention_mask=prompts["attention_mask"][start : start + batch]).new_tokens]

    def refilled() -> list[int]:
        return sample_batch(lm, settings, 0, input_ids=prompts["input_ids"], attention_mask=prompts["attention_mask"],
                            live=batch).new_tokens

    runs: dict[str, list[tuple[float, list[int]]]] = {"fixed": [], "refilled": []}
    for _ in range(repeats):
        for name, run in (("fixed", fixed), ("refilled", refilled)):
            runs[name].append(timed(lm.device, run))
    lm.model.to(original)
    result: dict = {"rows": len(rows), "batch": batch, "dtype": str(dtype).removeprefix("torch.")}
    for name, timings in runs.items():
        seconds, lengths = min(timings, key=lambda t: t[0] / max(sum(t[1]), 1))
        result[name] = {"tokens_per_second": sum(lengths) / seconds, "mean_new_tokens": sum(lengths) / len(lengths),
                        "seconds": seconds}
    result["speedup"] = result["refilled"]["tokens_per_second"] / result["fixed"]["tokens_per_second"]
    return result


def _decode_steps(decoder: LlamaDecoder, x: torch.Tensor, last_position: torch.Tensor, steps: int) -> None:
    for i in range(steps):
        decoder.step(x, last_position + 1 + i)


@torch.no_grad()
def decode_attention(lm: FrozenLM, batch: int, columns: int, steps: int, repeats: int) -> dict:
    """Milliseconds per decode step over a cache of `columns`, attending by `scaled_dot_product_attention` against
    two matmuls over transposed keys, in each of `BENCH_DTYPES`; best of `repeats`, interleaved. Records which
    one the sampler's `auto` picks by timing attention alone (`measured_attention`), so a machine where that pick loses
    the whole step shows it."""
    original = lm.model.dtype
    result: dict = {"batch": batch, "columns": columns, "steps": steps}
    for name, dtype in BENCH_DTYPES.items():
        lm.model.to(dtype)
        mask = torch.ones(batch, columns, dtype=torch.long, device=lm.device)
        positions = (mask.cumsum(-1) - 1)[:, -1:]
        cache = prefill(lm.model, _prefix(lm, batch, columns), mask, mask.cumsum(-1) - 1).cache
        x = lm.model.get_input_embeddings()(torch.zeros(batch, dtype=torch.long, device=lm.device))
        ms: dict[str, list[float]] = {"sdpa": [], "matmul": []}
        for _ in range(repeats):
            for attention, runs in ms.items():
                decoder = LlamaDecoder(lm.model, batch, columns, steps, attention=attention)
                decoder.admit(cache, mask)
                seconds, _ = timed(lm.device, _decode_steps, decoder, x, positions, steps)
                runs.append(seconds / steps * 1e3)
        result[name] = {f"{attention}_ms_per_step": min(runs) for attention, runs in ms.items()}
        result[name]["matmul_vs_sdpa_speedup"] = min(ms["sdpa"]) / min(ms["matmul"])
        result[name]["default"] = "matmul" if LlamaDecoder(lm.model, batch, columns, steps).transposed else "sdpa"
    lm.model.to(original)
    return result


@torch.no_grad()
def prompt_prefill_seconds(lm: FrozenLM, lengths: list[int], repeats: int) -> dict[str, float]:
    """Left-padded prompts of `lengths` tokens: one padded forward pass (what `generate` does) against
    ours (each row unpadded, into one padded KV cache); best of `repeats`, interleaved."""
    rows = [torch.randint(0, len(lm.tokenizer), (n,), generator=torch.Generator().manual_seed(n)) for n in lengths]
    width = max(lengths)
    input_ids = torch.stack([torch.nn.functional.pad(r, (width - len(r), 0)) for r in rows]).to(lm.device)
    mask = torch.stack([torch.nn.functional.pad(torch.ones_like(r), (width - len(r), 0)) for r in rows]).to(lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    embeds = lm.model.get_input_embeddings()(input_ids)
    padded, ours = [], []
    for _ in range(repeats):
        padded.append(timed(lm.device, lambda: lm.model(inputs_embeds=embeds, attention_mask=mask,
                                                         position_ids=positions, use_cache=True, logits_to_keep=1))[0])
        ours.append(timed(lm.device, prefill, lm.model, embeds, mask, positions)[0])
    return {"rows": len(lengths), "min_length": min(lengths), "max_length": width, "dtype": str(lm.model.dtype),
            "padded_batch_s": min(padded), "ours_s": min(ours), "speedup": min(padded) / min(ours)}


@torch.no_grad()
def next_token_sampling(lm: FrozenLM, text: str, rows: int, top_ps: tuple[float, ...], temperature: float,
                        repeats: int) -> dict:
    """Milliseconds to draw one token per row from the same logits: our `sample_next_token` against what
    `generate` does (temperature and top-p warpers, softmax, multinomial), at each of `top_ps`; best of
    `repeats` rounds of 20 calls, interleaved. The logits are the model's predictions at the last `rows`
    positions of a real target row, so the distributions are as peaked as in decoding."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"].to(lm.device)
    logits = lm.model(input_ids=ids).logits[0, -rows:].float()
    generator = torch.Generator(device=lm.device).manual_seed(0)
    result: dict = {"rows": logits.shape[0], "vocabulary": logits.shape[1], "temperature": temperature}
    for top_p in top_ps:
        warpers = [TemperatureLogitsWarper(temperature)] + ([TopPLogitsWarper(top_p)] if top_p < 1 else [])
        plain = functools.partial(_warped_multinomial, logits, ids, warpers, generator)
        ours = functools.partial(sample_next_token, logits, temperature, top_p, generator)
        ms: dict[str, list[float]] = {"plain": [], "ours": []}
        for _ in range(repeats):
            for name, fn in (("plain", plain), ("ours", ours)):
                fn()
                ms[name].append(timed(lm.device, lambda f=fn: [f() for _ in range(20)])[0] / 20 * 1e3)
        result[f"top_p_{top_p}"] = {"plain_ms": min(ms["plain"]), "ours_ms": min(ms["ours"]),
                                    "speedup": min(ms["plain"]) / min(ms["ours"])}
    return result


def _warped_multinomial(logits: torch.Tensor, ids: torch.Tensor, warpers: list, generator: torch.Generator
                        ) -> torch.Tensor:
    for warp in warpers:
        logits = warp(ids, logits)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


def backward_pass(lm: FrozenLM, prompt: Any, context: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor,
                  bf16: bool) -> int:
    """One forward and backward pass of the soft prompt's training loss; the number of target tokens."""
    from synth_core.softprompt.training import target_nll

    nll, count = target_nll(lm, prompt, context, input_ids, mask, bf16)
    (nll / count).backward()
    return count


def training_step(lm: FrozenLM, batch: int, length: int, num_tokens: int, bf16: bool) -> dict[str, float]:
    """One optimiser step of an `mc` soft prompt on random tokens; best of two after a warm-up."""
    from synth_core.softprompt import build_soft_prompt

    prompt = build_soft_prompt("mc", {"num_tokens": num_tokens, "hidden_size": lm.hidden_size, "context_dim": 384,
                                      "mlp_hidden": 64}).to(lm.device)
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=1e-3)
    input_ids = torch.randint(0, len(lm.tokenizer), (batch, length), device=lm.device)
    mask = torch.ones_like(input_ids)
    context = torch.randn(batch, 384, device=lm.device)

    def step() -> None:
        backward_pass(lm, prompt, context, input_ids, mask, bf16)
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up: the first step pays for allocations
    seconds = min(timed(lm.device, step)[0] for _ in range(2))
    return {"seconds": seconds, "tokens_per_second": batch * length / seconds}


def training_batches(lm: FrozenLM, token_rows: list[list[int]], batch: int, steps: int, bf16: bool) -> dict:
    """Soft-prompt training steps on the same rows: random batches (padded to their longest row) against
    the trainer's length-pooled batches; steps interleaved, so both see the same machine."""
    import numpy as np

    from synth_core.softprompt import build_soft_prompt
    from synth_core.softprompt.training import batch_rows, collate

    prompt = build_soft_prompt("nsp", {"num_tokens": 16, "hidden_size": lm.hidden_size, "context_dim": 1}).to(lm.device)
    lengths = np.array([len(row) for row in token_rows])
    schemes = {"random": lambda step: np.random.default_rng([0, step]).choice(len(lengths), batch, replace=False),
               "length_pooled": lambda step: batch_rows(lengths, batch, step, seed=0)}
    figures = {name: {"seconds": 0.0, "tokens": 0, "padded_tokens": 0} for name in schemes}
    for step in range(steps):
        for name, rows_of in schemes.items():
            input_ids, mask = collate([token_rows[i] for i in rows_of(step)], lm.tokenizer.pad_token_id)
            seconds, count = timed(lm.device, backward_pass, lm, prompt, torch.zeros(batch, 1), input_ids, mask, bf16)
            prompt.zero_grad()
            figures[name]["seconds"] += seconds
            figures[name]["tokens"] += count
            figures[name]["padded_tokens"] += mask.numel()
    result = {"batch": batch, "steps": steps, "rows": len(token_rows), "mean_length": float(lengths.mean()),
              "bf16_autocast": bf16}
    for name, f in figures.items():
        result[name] = {"s_per_step": f["seconds"] / steps, "target_tokens_per_second": f["tokens"] / f["seconds"],
                        "useful_token_fraction": f["tokens"] / f["padded_tokens"]}
    result["speedup"] = result["length_pooled"]["target_tokens_per_second"] / result["random"][
        "target_tokens_per_second"]
    return result


def run_throughput(batches: tuple[int, ...] = (1, 16, 64), new_tokens: int = 64, num_tokens: int = 16,
                   model: str = "embedded:smollm2-135m", repeats: int = 3, prompt_rows: int = 16,
                   prompt_lengths: tuple[int, int] = (256, 768), training_texts: list[str] | None = None,
                   training_steps: int = 16, attention_columns: int = 320) -> dict:
    torch.manual_seed(0)
    results: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "cuda": torch.cuda.is_available()}}
    if model == "embedded:smollm2-135m":
        with tempfile.TemporaryDirectory() as cold_cache:
            previous = os.environ.get("SYNTH_CACHE_DIR")
            os.environ["SYNTH_CACHE_DIR"] = cold_cache
            cold = load_frozen_lm(GeneratorConfig(model=model))
            warm = load_frozen_lm(GeneratorConfig(model=model))
            if previous is None:
                os.environ.pop("SYNTH_CACHE_DIR")
            else:
                os.environ["SYNTH_CACHE_DIR"] = previous
        results["load_seconds"] = {"cold_gguf": cold.load_seconds, "cached_safetensors": warm.load_seconds}
        log.info("model load: %s", results["load_seconds"])
    lm = load_frozen_lm(GeneratorConfig(model=model))
    params = sum(p.numel() for p in lm.model.parameters())
    peak = {name: matmul_peak_gflops(dtype, lm.device) for name, dtype in BENCH_DTYPES.items()}
    results["matmul_peak_gflops"] = peak
    log.info("matmul peak GFLOP/s: %s", peak)
    base = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, top_p=0.95)
    results["generation"] = []
    for batch in batches:
        results["generation"].append(generation_like_with_like(lm, batch, base, num_tokens, repeats, peak, params))
        log.info("generation at batch %d: %s", batch, results["generation"][-1])
    if supports(lm.model):
        results["decode_attention"] = decode_attention(lm, max(batches), attention_columns, 8, repeats)
        log.info("decode attention: %s", results["decode_attention"])
    low, high = prompt_lengths  # GSM8K's 3-shot prompts run 370-800 tokens
    results["prompt_prefill"] = prompt_prefill_seconds(
        lm, [low + (high - low) * i // max(prompt_rows - 1, 1) for i in range(prompt_rows)], repeats)
    log.info("prompt prefill: %s", results["prompt_prefill"])
    results["training_step"] = {"batch": 8, "length": 64,
                                "fp32": training_step(lm, 8, 64, num_tokens, bf16=False),
                                "bf16_autocast": training_step(lm, 8, 64, num_tokens, bf16=True)}
    log.info("training step: %s", results["training_step"])
    if training_texts:
        from synth_core.bench.quality import SCALES
        from synth_core.softprompt.training import tokenize_targets
        from synth_core.token_limits import covering_length, token_counts

        small = SCALES["small"]  # the quality bench's training sizes; its length is the product's auto one
        length = covering_length(token_counts(lm.tokenizer, training_texts))
        rows = tokenize_targets(lm.tokenizer, training_texts, length)
        results["training_batches"] = training_batches(lm, rows, small.batch_size, training_steps, bf16=True)
        log.info("training batches: %s", results["training_batches"])
        longest = max(training_texts[:64], key=len)
        results["next_token_sampling"] = next_token_sampling(lm, longest, max(batches), (1.0, base.top_p, 0.9),
                                                             base.temperature, repeats)
        log.info("next-token sampling: %s", results["next_token_sampling"])
        results["refilled_batches"] = refilled_batches(lm, training_texts, max(batches), BATCHES_PER_CALL, base,
                                                         repeats)
        log.info("refilled batches: %s", results["refilled_batches"])
    results["params"] = params
    results["settings"] = {"new_tokens": new_tokens, "prefix_tokens": num_tokens, "repeats": repeats,
                           "temperature": base.temperature, "top_p": base.top_p, "model": model}
    return results
