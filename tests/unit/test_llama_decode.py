"""The preallocated-cache decode step against the model's own forward pass, on the tiny random Llama."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from synth_core.generation import llama_decode
from synth_core.generation.decoding import _ForwardStep, prefill
from synth_core.generation.llama_decode import LlamaDecoder, measured_attention, supports

pytestmark = pytest.mark.unit


@torch.no_grad()
@pytest.mark.parametrize(("dtype", "attention", "ours_attention", "tolerance"),
                         [(torch.float32, "sdpa", "sdpa", 1e-5), (torch.float32, "eager", "matmul", 1e-5),
                          (torch.bfloat16, "eager", "matmul", 2e-2), (torch.bfloat16, "sdpa", "sdpa", 2e-2)])
def test_logits_match_the_forward_pass_with_left_padding_and_dropped_rows(tiny_lm, dtype, attention, ours_attention,
                                                                          tolerance):
    """`scaled_dot_product_attention` over the cache must give the logits of the forward pass through SDPA, and
    two matmuls with softmax in float32 those of the model's eager attention, in either dtype (in bfloat16 the
    two attentions differ by ~0.05 on the tiny model's logits, more than a rounding step, 0.016)."""
    model = copy.deepcopy(tiny_lm.model).to(dtype)
    model.set_attn_implementation(attention)
    lengths = [5, 2, 4]
    width = max(lengths)
    generator = torch.Generator().manual_seed(0)
    embeds = (torch.randn(len(lengths), width, tiny_lm.hidden_size, generator=generator) * 0.1).to(dtype)
    mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = prefill(model, embeds, mask, positions)
    ours = LlamaDecoder(model, len(lengths), width, max_new_tokens=6, attention=ours_attention)
    ours.admit(copy.deepcopy(out.cache), mask)
    assert ours.transposed == (ours_attention == "matmul")
    theirs = _ForwardStep(model)
    theirs.admit(copy.deepcopy(out.cache), mask)
    next_position = positions[:, -1:] + 1
    for step in range(5):
        if step == 2:  # the middle row finishes: both steps must keep the other rows' caches intact
            rows = torch.tensor([0, 2])
            ours.keep(rows)
            theirs.keep(rows)
            next_position = next_position[rows]
        token = torch.randint(0, len(tiny_lm.tokenizer), (len(next_position),), generator=generator)
        x = model.get_input_embeddings()(token)
        expected = theirs.step(x, next_position)
        got = ours.step(x, next_position)
        torch.testing.assert_close(got.float(), expected.float(), atol=tolerance, rtol=tolerance)
        next_position = next_position + 1


def test_only_plain_llama_layers_take_the_preallocated_path(tiny_lm):
    assert supports(tiny_lm.model)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, mlp_bias=True)
    assert not supports(LlamaForCausalLM(config))


def test_auto_attention_is_timed_once_per_shape_and_used_by_the_decoder(tiny_lm):
    """`auto` takes whichever attention ran faster here for the decoder's shape (cache width + half the new
    tokens, rounded up to 64 columns); a shape measured once is not timed again."""
    llama_decode._measured.clear()
    config = tiny_lm.model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    choice = measured_attention(3, kv_heads, heads // kv_heads, head_dim, 8, torch.float32, torch.device("cpu"))
    assert choice in ("sdpa", "matmul") and len(llama_decode._measured) == 1
    decoder = LlamaDecoder(tiny_lm.model, 3, 5, max_new_tokens=6)  # 5 + 6 // 2 = 8 columns: same bucket
    assert decoder.transposed == (choice == "matmul") and len(llama_decode._measured) == 1
    measured_attention(3, kv_heads, heads // kv_heads, head_dim, 65, torch.float32, torch.device("cpu"))
    assert len(llama_decode._measured) == 2
