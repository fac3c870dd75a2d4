"""The throughput benchmark's plumbing on the tiny random model (figures come from `synth bench throughput`)."""

from __future__ import annotations

import json

import pytest

from synth_core.cli import main as synth
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit


def test_throughput_bench_prints_ratios_against_plain_generate(capsys):
    assert synth(["bench", "throughput", "--model", "embedded:tiny-random", "--batches", "1,2",
                  "--new-tokens", "4", "--repeats", "1", "--training-steps", "2", "--attention-columns", "12",
                  "--training-domain", str(REPO / "domains" / "gsm8k.yaml")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["batch"] for row in result["generation"]] == [1, 2]
    for row in result["generation"]:
        for dtype in ("fp32", "bf16"):  # like with like: both samplers in each dtype
            figures = row[dtype]
            assert figures["plain_tok_s"] > 0 and figures["ours_tok_s"] > 0
            assert figures["ours_vs_plain"] == pytest.approx(figures["ours_tok_s"] / figures["plain_tok_s"])
            assert 0 < figures["ours_fraction_of_peak"]
        best = row["best"]
        assert best["ours_vs_plain"] == pytest.approx(row[best["ours_dtype"]]["ours_tok_s"]
                                                      / row[best["plain_dtype"]]["plain_tok_s"])
        assert row[best["ours_dtype"]]["ours_tok_s"] == max(row[d]["ours_tok_s"] for d in ("fp32", "bf16"))
    attention = result["decode_attention"]
    assert (attention["batch"], attention["columns"]) == (2, 12)
    for dtype in ("fp32", "bf16"):
        figures = attention[dtype]
        assert figures["default"] in ("sdpa", "matmul")  # timed on the machine (test_llama_decode.py)
        assert figures["matmul_vs_sdpa_speedup"] == pytest.approx(figures["sdpa_ms_per_step"]
                                                                   / figures["matmul_ms_per_step"])
    prompts = result["prompt_prefill"]
    assert (prompts["rows"], prompts["min_length"], prompts["max_length"]) == (16, 256, 768)
    assert prompts["speedup"] == pytest.approx(prompts["padded_batch_s"] / prompts["ours_s"])
    assert result["training_step"]["fp32"]["seconds"] > 0
    assert result["matmul_peak_gflops"]["fp32"] > 0 and result["matmul_peak_gflops"]["bf16"] > 0
    batches = result["training_batches"]
    assert (batches["rows"], batches["steps"], batches["batch"]) == (400, 2, 8) and batches["mean_length"] > 50
    assert batches["length_pooled"]["useful_token_fraction"] > batches["random"]["useful_token_fraction"]
    assert batches["speedup"] == pytest.approx(batches["length_pooled"]["target_tokens_per_second"]
                                               / batches["random"]["target_tokens_per_second"])
    sampling = result["next_token_sampling"]
    assert sampling["rows"] == 2 and sampling["temperature"] == 1.0
    for top_p in (1.0, 0.95, 0.9):  # no top-p, the bench's decoding, auto decoding's cooler nucleus
        figures = sampling[f"top_p_{top_p}"]
        assert figures["speedup"] == pytest.approx(figures["plain_ms"] / figures["ours_ms"])
    refill = result["refilled_batches"]  # one call keeping 2 rows decoding against fixed batches of 2
    assert (refill["rows"], refill["batch"]) == (8, 2)
    assert refill["speedup"] == pytest.approx(refill["refilled"]["tokens_per_second"]
                                              / refill["fixed"]["tokens_per_second"])
    assert 0 < refill["fixed"]["mean_new_tokens"] <= 4 and 0 < refill["refilled"]["mean_new_tokens"] <= 4


def test_thread_bench_runs_workers_alone_and_two_at_once_with_and_without_the_budget(capsys):
    assert synth(["bench", "threads", "--model", "embedded:tiny-random", "--steps", "1", "--lead-s", "8"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["alone"]["steps_per_second"] > 0
    cores = result["cores"]
    assert [p["torch_threads"] for p in result["two_with_budget"]["processes"]] == [max(1, cores // 2)] * 2
    assert [p["torch_threads"] for p in result["two_without_budget"]["processes"]] == [result["alone"]["torch_threads"]] * 2
    for case in ("two_with_budget", "two_without_budget"):
        assert len(result[case]["each_vs_alone"]) == 2 and all(r > 0 for r in result[case]["each_vs_alone"])
