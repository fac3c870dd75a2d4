"""Exact checks on real seed rows and on broken variants of them."""

from __future__ import annotations

import json

import pytest

from synth_core.bench.exact_checks import check_boolq, check_gsm8k, check_mbpp, gsm8k_equations, run_asserts
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit


def _rows(domain: str, n: int) -> list[dict]:
    lines = (REPO / "domains" / "data" / domain / "train.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def test_real_gsm8k_answers_are_consistent_and_a_wrong_step_is_caught():
    texts = [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in _rows("gsm8k", 40)]
    result = check_gsm8k(texts)
    assert result["final_answer_rate"] == 1.0
    assert result["rows_with_arithmetic"] > 0.6 and result["arithmetic_consistent_rate"] > 0.9
    assert gsm8k_equations("She sold 48/2 = 24 clips and 48+24 = 71 in all.\n#### 71") == [True, False]
    assert check_gsm8k(["no answer here"])["final_answer_rate"] == 0.0


def test_real_mbpp_code_parses_and_its_asserts_pass_and_broken_code_does_not():
    texts = [f"# Task: {r['text']}\n{r['code']}\n{r['tests']}" for r in _rows("mbpp", 12)]
    result = check_mbpp(texts)
    assert result["parses_rate"] == 1.0 and result["rows_with_asserts"] == 1.0
    assert result["asserts_pass_rate"] > 0.9
    broken = check_mbpp(["# Task: add\ndef add(a, b) return a + b", "# Task: add\ndef add(a, b):\n    return a - b\n"
                         "assert add(1, 2) == 3"])
    assert broken["parses_rate"] == 0.5 and broken["asserts_pass_rate"] == 0.0


def test_sandboxed_asserts_time_out_and_see_no_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "x")
    assert not run_asserts("while True: pass", timeout_s=1)
    assert run_asserts("import os\nassert 'SECRET_TOKEN' not in os.environ")


def test_boolq_answer_format():
    assert check_boolq(["Question: is water wet?\nAnswer: true", "Question: is it?\nAnswer: maybe"]) == {
        "answer_format_rate": 0.5}


def test_a_long_run_of_digits_is_checked_in_linear_time():
    # a generated row of ~30 digits once hung the benchmark: the equation pattern backtracked exponentially
    row = "So the total is " + "1" * 5000 + " apples, and 3 + 4 = 7 pears"
    assert gsm8k_equations(row) == [True]
