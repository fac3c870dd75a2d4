"""One decode step of a Llama-shaped model over a preallocated KV cache.

`transformers`' forward pass grows its KV cache by concatenation, so every decode step copies every
layer's whole cache (at batch 64 and 400 tokens, about 0.6 GB a step for SmolLM2), and rebuilds the
attention mask and its bookkeeping around 30 small layers. Here the cache is allocated once for the
longest row and each step writes one column into it; attention reads a view of the columns filled so
far. The arithmetic is the model's own (its weights, its rotary embedding, RMSNorm in float32 as in
`LlamaRMSNorm`), so the logits match its forward pass to rounding (`tests/unit/test_llama_decode.py`).

Only models whose layers are plain Llama (no biases, SiLU MLP, no output-logit transform) take this
path; any other model keeps its own forward pass (`supports`).
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from transformers import DynamicCache

LLAMA_CLASSES = ("LlamaForCausalLM",)
ATTENTION = ("auto", "sdpa", "matmul")
log = logging.getLogger(__name__)


def supports(model) -> bool:
    """Whether `model` is a Llama whose forward pass this step reproduces."""
    config = model.config
    return (type(model).__name__ in LLAMA_CLASSES and config.hidden_act == "silu"
            and not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and getattr(config, "pretraining_tp", 1) == 1)


MEASURE_REPEATS = 5  # timings per attention, interleaved; the best of each decides
_measured: dict[tuple, str] = {}  # one measurement per machine, dtype and decode shape, for the process's life


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, seen: torch.Tensor, transposed: bool) -> torch.Tensor:
    """One query per head over the filled columns; the queries of one kv head attend together (GQA without
    repeating the cache). `transposed`: `keys` is a view of keys stored [.., head_dim, columns], attended by
    two matmuls that read them in memory order, softmax in float32 as the model's eager attention; otherwise
    `scaled_dot_product_attention` over the strided view."""
    if not transposed:
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=seen)
    scores = torch.matmul(q, keys.transpose(-1, -2)).float().mul_(q.shape[-1] ** -0.5)
    return torch.matmul(scores.masked_fill_(~seen, float("-inf")).softmax(-1).to(values.dtype), values)


def measured_attention(batch: int, kv_heads: int, groups: int, head_dim: int, columns: int, dtype: torch.dtype,
                       device: torch.device) -> str:
    """The faster attention for this decode shape, timed here on random tensors in both cache layouts.

    Which one wins depends on the CPU, not only on the dtype (whole step, SmolLM2, batch 64, 320 columns):
    bf16 two matmuls beat SDPA on an AVX-512 EPYC (143 against 153 ms) and lost on an AMX Xeon (184 against
    170, then 256 against 202 ms); fp32 SDPA won on the EPYC (236 against 261 ms). The timing costs a few
    milliseconds per new shape; a GPU keeps SDPA (its fused kernels)."""
    if device.type != "cpu":
        return "sdpa"
    key = (str(device), dtype, batch, kv_heads, groups, head_dim, -(-columns // 64) * 64)
    if key not in _measured:
        q = torch.randn(batch, kv_heads, groups, head_dim, dtype=dtype, device=device)
        stored = {"sdpa": torch.randn(batch, kv_heads, 2 * columns, head_dim, dtype=dtype, device=device),
                  "matmul": torch.randn(batch, kv_heads, head_dim, 2 * columns, dtype=dtype, device=device)}
        views = {"sdpa": stored["sdpa"][:, :, :columns], "matmul": stored["matmul"][..., :columns].transpose(-1, -2)}
        values = torch.randn(batch, kv_heads, 2 * columns, head_dim, dtype=dtype, device=device)[:, :, :columns]
        seen = torch.ones(batch, 1, 1, columns, dtype=torch.bool, device=device)
        best = dict.fromkeys(views, float("inf"))
        for _ in range(MEASURE_REPEATS):
            for name, keys in views.items():
                started = time.perf_counter()
                attend(q, keys, values, seen, name == "matmul")
                best[name] = min(best[name], time.perf_counter() - started)
        _measured[key] = min(best, key=best.get)
        log.info("decode attention for batch %d, %d columns, %s: %s (sdpa %.2f ms, matmul %.2f ms)", batch, columns,
                 dtype, _measured[key], 1e3 * best["sdpa"], 1e3 * best["matmul"])
    return _measured[key]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class LlamaDecoder:
    """The prompt's KV cache copied into buffers long enough for `max_new_tokens` more columns.

    Rows are left-padded: column `c` of every row is the same step, and `valid` marks the columns a row
    attends to (its real prompt tokens and every token it has sampled).

    Attention over the cache runs either as `scaled_dot_product_attention` or as two matmuls over keys stored
    transposed; `attention="auto"` times both on this machine for this shape (`measured_attention`).
    """

    def __init__(self, model, cache: DynamicCache, mask: torch.Tensor, max_new_tokens: int, attention: str = "auto"):
        self.model = model
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        batch, width = mask.shape
        columns = width + max_new_tokens
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        if attention == "auto":
            keys = cache.layers[0].keys
            attention = measured_attention(batch, self.kv_heads, self.heads // self.kv_heads, self.head_dim,
                                           width + max_new_tokens // 2, keys.dtype, keys.device)
        self.transposed = attention == "matmul"
        self.keys, self.values = [], []  # keys [rows, kv heads, head_dim, columns] when `transposed`
        for layer in cache.layers:
            values = layer.values.new_empty(batch, self.kv_heads, columns, self.head_dim)
            keys = (values.new_empty(batch, self.kv_heads, self.head_dim, columns) if self.transposed
                    else torch.empty_like(values))
            self._key_columns(keys, width)[:] = layer.keys
            values[:, :, :width] = layer.values
            self.keys.append(keys)
            self.values.append(values)
        self.valid = torch.zeros(batch, columns, dtype=torch.bool, device=mask.device)
        self.valid[:, :width] = mask.bool()
        self.column = width  # where the next token's key and value go

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (ascending; the unfinished ones), so later steps cost only the rows still decoding.

        The kept rows move to the front of the same buffers and only the filled columns are copied: in a batch
        of 64 rows nearly every step drops one, and copying whole buffers each time would cost more than the
        concatenation this replaces."""
        filled, kept = self.column, len(rows)
        for keys, values in zip(self.keys, self.values, strict=True):
            self._key_columns(keys, filled)[:kept] = self._key_columns(keys, filled)[rows]
            values[:kept, :, :filled] = values[rows, :, :filled]
        self.keys = [keys[:kept] for keys in self.keys]
        self.values = [values[:kept] for values in self.values]
        self.valid = self.valid[rows]

    def _key_columns(self, keys: torch.Tensor, stop: int) -> torch.Tensor:
        """The first `stop` columns of a layer's keys, as [rows, kv heads, columns, head_dim] in either layout."""
        return keys[..., :stop].transpose(-1, -2) if self.transposed else keys[:, :, :stop]

    def step(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] for the next token, given each row's last token and its position."""
        decoder = self.model.get_decoder()
        column = self.column
        self.valid[:, column] = True
        x = decoder.embed_tokens(token)  # [rows, hidden]
        cos, sin = decoder.rotary_emb(x[:, None], position.view(-1, 1))  # [rows, 1, head_dim]
        cos, sin = cos[:, None], sin[:, None]  # broadcast over (kv heads, queries per kv head)
        seen = self.valid[:, None, None, : column + 1]
        groups = self.heads // self.kv_heads
        for keys, values, layer in zip(self.keys, self.values, decoder.layers, strict=True):
            attention = layer.self_attn
            h = _rms_norm(x, layer.input_layernorm.weight, self.eps)
            q = attention.q_proj(h).view(-1, self.kv_heads, groups, self.head_dim)
            k = attention.k_proj(h).view(-1, self.kv_heads, 1, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            self._key_columns(keys, column + 1)[:, :, column] = (k * cos + _rotate_half(k) * sin)[:, :, 0]
            values[:, :, column] = attention.v_proj(h).view(-1, self.kv_heads, self.head_dim)
            out = attend(q, self._key_columns(keys, column + 1), values[:, :, : column + 1], seen, self.transposed)
            x = x + attention.o_proj(out.reshape(len(x), -1))
            h = _rms_norm(x, layer.post_attention_layernorm.weight, self.eps)
            mlp = layer.mlp
            x = x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
        self.column += 1
        return self.model.get_output_embeddings()(decoder.norm(x))
