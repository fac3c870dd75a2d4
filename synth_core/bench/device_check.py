"""Device check: the throughput bench on a randomly initialised Llama-shaped model, for a GPU worker.

A GPU machine for a quick check has PyTorch, transformers, peft and sentence-transformers, and no
model hub: the model is built from a config (shape `1b` is Llama-3.2-1B's, with SmolLM2's vocabulary
size) and the tokenizer is a word-level one made in memory, so nothing is downloaded. It runs our
sampler against plain `generate` in fp32 and bf16 at each batch size, one soft-prompt training step,
and writes one JSON file. Shape `tiny` runs in seconds on a CPU, so CI exercises this very script.

    python -m synth_core.bench.device_check --shape 1b --out gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from synth_core.bench.throughput import (
    BENCH_DTYPES,
    generation_like_with_like,
    matmul_peak_gflops,
    training_step,
)
from synth_core.config import GenerationConfig
from synth_core.models import FrozenLM, ModelIdentity, native_bf16, select_device, weight_dtype

VOCAB = 49152  # SmolLM2's


@dataclass(frozen=True)
class Shape:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int


SHAPES = {"tiny": Shape(64, 128, 2, 4, 2),
          "1b": Shape(2048, 8192, 16, 32, 8)}  # Llama-3.2-1B: ~1.1B parameters with this vocabulary


def word_tokenizer(vocab_size: int = VOCAB):
    """A word-level fast tokenizer over `vocab_size` made-up words, with pad/bos/eos: enough for sampling
    and decoding, and built without a download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(vocab_size - len(specials))])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def random_llama(shape: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> FrozenLM:
    """A frozen Llama of `shape` with random weights, on `device` in `dtype`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    tokenizer = word_tokenizer()
    dims = SHAPES[shape]
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=dims.hidden_size,
                         intermediate_size=dims.intermediate_size, num_hidden_layers=dims.num_hidden_layers,
                         num_attention_heads=dims.num_attention_heads, num_key_value_heads=dims.num_key_value_heads,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.eval().requires_grad_(False)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return FrozenLM(model, tokenizer, ModelIdentity(f"random-llama-{shape}", f"seed{seed}"),
                    time.perf_counter() - started, False)


def run_device_check(shape: str = "tiny", batches: tuple[int, ...] = (1, 64, 256), new_tokens: int = 64,
                     repeats: int = 2, device_spec: str = "auto") -> dict:
    started = time.perf_counter()
    device = select_device(device_spec)
    dtype = weight_dtype("auto", device)
    lm = random_llama(shape, device, dtype)
    params = sum(p.numel() for p in lm.model.parameters())
    machine = {"device": str(device), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "native_bf16": native_bf16(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    peak = {name: matmul_peak_gflops(d, device, size=4096 if device.type == "cuda" else 1024)
            for name, d in BENCH_DTYPES.items()}
    settings = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, top_p=0.95)
    generation = [generation_like_with_like(lm, batch, settings, 16, repeats, peak, params) for batch in batches]
    step = training_step(lm, batch=8, length=128, num_tokens=16, bf16=native_bf16(device))
    if device.type == "cuda":
        machine["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return {"bench": "device_check", "shape": shape, "params": params, "weight_dtype": str(dtype).removeprefix("torch."),
            "machine": machine, "matmul_peak_gflops": peak, "generation": generation,
            "training_step": {"batch": 8, "length": 128, **step},
            "settings": {"new_tokens": new_tokens, "prefix_tokens": 16, "repeats": repeats},
            "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_core.bench.device_check", description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--batches", default="1,64,256", help="comma-separated batch sizes")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run_device_check(args.shape, tuple(int(b) for b in args.batches.split(",")), args.new_tokens,
                              args.repeats, args.device)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
