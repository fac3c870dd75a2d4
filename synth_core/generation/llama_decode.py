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
    """KV-cache buffers for up to `rows` rows of `prompt_width + max_new_tokens` columns, allocated once.

    Rows enter with `admit` (their prompt's cache, left-padded to `prompt_width` columns) and leave with `keep`;
    each row writes its next key and value at its own column, and `valid` marks the columns a row attends to
    (its real prompt tokens and every token it has fed since). So rows admitted later, into the room finished
    rows left, decode beside rows that are further on.

    Attention over the cache runs either as `scaled_dot_product_attention` or as two matmuls over keys stored
    transposed; `attention="auto"` times both on this machine for this shape (`measured_attention`).
    """

    def __init__(self, model, rows: int, prompt_width: int, max_new_tokens: int, attention: str = "auto"):
        self.model = model
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        # a row feeds its prompt's last token and then up to max_new_tokens - 1 sampled ones
        columns = prompt_width + max_new_tokens
        weight = model.get_input_embeddings().weight
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        if attention == "auto":
            attention = measured_attention(rows, self.kv_heads, self.heads // self.kv_heads, self.head_dim,
                                           prompt_width + max_new_tokens // 2, weight.dtype, weight.device)
        self.transposed = attention == "matmul"
        shape = (rows, self.kv_heads, columns, self.head_dim)
        key_shape = (rows, self.kv_heads, self.head_dim, columns) if self.transposed else shape
        layers = config.num_hidden_layers
        # zeros, not empty memory: a row attends over every row's widest column, masking what is not its own,
        # and a NaN left in memory would survive the mask
        self.keys = [weight.new_zeros(key_shape) for _ in range(layers)]  # [rows, kv heads, head_dim, columns]
        self.values = [weight.new_zeros(shape) for _ in range(layers)]  # when `transposed`
        self.valid = torch.zeros(rows, columns, dtype=torch.bool, device=weight.device)
        self.column = torch.zeros(rows, dtype=torch.long, device=weight.device)  # each row's next key and value
        self.rows = 0  # rows in use: the first `rows` of every buffer

    def admit(self, cache: DynamicCache | None, mask: torch.Tensor) -> None:
        """Add rows after the ones decoding: `cache` holds their prompts but for each prompt's last token
        (`mask`'s columns, left-padded; None when no row has a token there), which their first `step` feeds."""
        start, count, width = self.rows, *mask.shape
        if start + count > len(self.valid):
            raise ValueError(f"{count} more rows do not fit: {start} of {len(self.valid)} are in use")
        rows = slice(start, start + count)
        self.valid[rows] = False
        self.valid[rows, :width] = mask.bool()
        if cache is not None:
            for keys, values, layer in zip(self.keys, self.values, cache.layers, strict=True):
                self._key_columns(keys[rows], width)[:] = layer.keys
                values[rows, :, :width] = layer.values
        self.column[rows] = width
        self.rows += count

    def keep(self, rows: torch.Tensor) -> None:
        """Keep `rows` (the unfinished ones), row `rows[i]` becoming row i, so later steps cost only the rows still
        decoding. Only the rows that change place are copied, and only their filled columns: in a batch of 64 rows
        nearly every step drops one, and a caller that fills each gap with a row from the end (`compacting_order`)
        copies one row per row dropped."""
        kept = len(rows)
        moved = (rows != torch.arange(kept, device=rows.device)).nonzero().squeeze(-1)
        if len(moved):
            source, filled = rows[moved], int(self.column[: self.rows].max())
            for keys, values in zip(self.keys, self.values, strict=True):
                self._key_columns(keys, filled)[moved] = self._key_columns(keys, filled)[source]
                values[moved, :, :filled] = values[source, :, :filled]
            self.valid[moved] = self.valid[source]
            self.column[moved] = self.column[source]
        self.rows = kept

    def _key_columns(self, keys: torch.Tensor, stop: int) -> torch.Tensor:
        """The first `stop` columns of a layer's keys, as [rows, kv heads, columns, head_dim] in either layout."""
        return keys[..., :stop].transpose(-1, -2) if self.transposed else keys[:, :, :stop]

    def step(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] for the next token, given each row's input embedding [rows, hidden] (its last
        token's, or its prompt's last) and that input's position."""
        decoder = self.model.get_decoder()
        count = self.rows
        row, column = torch.arange(count, device=x.device), self.column[:count]
        self.valid[row, column] = True
        width = int(column.max()) + 1
        cos, sin = decoder.rotary_emb(x[:, None], position.view(-1, 1))  # [rows, 1, head_dim]
        cos, sin = cos[:, None], sin[:, None]  # broadcast over (kv heads, queries per kv head)
        seen = self.valid[:count, None, None, :width]
        groups = self.heads // self.kv_heads
        for keys, values, layer in zip(self.keys, self.values, decoder.layers, strict=True):
            attention = layer.self_attn
            h = _rms_norm(x, layer.input_layernorm.weight, self.eps)
            q = attention.q_proj(h).view(-1, self.kv_heads, groups, self.head_dim)
            k = attention.k_proj(h).view(-1, self.kv_heads, 1, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = (k * cos + _rotate_half(k) * sin)[:, :, 0]
            if self.transposed:
                keys[row, :, :, column] = k
            else:
                keys[row, :, column] = k
            values[row, :, column] = attention.v_proj(h).view(-1, self.kv_heads, self.head_dim)
            out = attend(q, self._key_columns(keys[:count], width), values[:count, :, :width], seen, self.transposed)
            x = x + attention.o_proj(out.reshape(len(x), -1))
            h = _rms_norm(x, layer.post_attention_layernorm.weight, self.eps)
            mlp = layer.mlp
            x = x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
        self.column[:count] += 1
        return self.model.get_output_embeddings()(decoder.norm(x))
