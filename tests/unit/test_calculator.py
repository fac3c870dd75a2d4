"""The calculator that writes arithmetic steps' results while sampling: the value it writes makes the
arithmetic check pass, and its per-row state lets the model choose the lead (" ", " $") but not the
number, and adds no digit after it. Driven token by token with SmolLM2's real tokenizer."""

from __future__ import annotations

import pytest
import torch

from synth_core.arithmetic import arithmetic_steps, equation_result
from synth_core.generation.calculator import Calculator

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "value"), [
    ("Natalia sold 48/2 =", "24"), ("Weng earns 12/60 = ", "0.2"), ("she has 100 - 50 - 30 - 15 =", "5"),
    ("It costs 1,200 x 3 =", "3600"), ("So $12 * 2.5 =", "30"), ("left: 5 - 8 =", "-3"),
    ("each gets 100 / 3 =", "33.333"), ("(3 + 4) * 2 =", "14"),
])
def test_equation_result_makes_the_step_hold(text, value):
    assert equation_result(text) == value
    assert arithmetic_steps(f"{text.rstrip()} {value} apples.") == [True]


@pytest.mark.parametrize("text", ["She is 7 =", "x = ", "The answer is =", "six 3 =", "1/0 =", "Answer: 24"])
def test_equation_result_leaves_what_is_no_step(text):
    assert equation_result(text) is None


@pytest.fixture(scope="module")
def calculator(tiny_lm) -> Calculator:
    return Calculator(tiny_lm.tokenizer)


def _drive(calculator: Calculator, tokenizer, prefix: str, model_says: list[str]) -> str:
    """One row: the prefix's tokens as if sampled, then at each step the model's most wanted piece among
    `model_says` that the calculator allows (the first allowed, in order), through the calculator."""
    ids = tokenizer.encode(prefix, add_special_tokens=False)
    steps = len(ids) + len(model_says)
    tokens = torch.zeros(1, steps, dtype=torch.long)
    calculator.start(torch.device("cpu"))
    wanted = iter(model_says)
    for step in range(steps):
        logits = torch.zeros(1, len(tokenizer))
        calculator.restrict(logits, [0])
        if step < len(ids):
            choice = ids[step]
        else:
            piece = next(wanted)
            choice = tokenizer.encode(piece, add_special_tokens=False)[0]
            if logits[0, choice] == float("-inf"):  # the model's wish is masked: it takes a space instead
                choice = tokenizer.encode(" ", add_special_tokens=False)[0]
        token = calculator.override(torch.tensor([choice]), [0])
        tokens[0, step] = token
        calculator.observe(tokens, [0], [step + 1], token)
    return tokenizer.decode(tokens[0])


def test_the_model_chooses_the_lead_and_the_calculator_the_number(calculator, tiny_lm):
    tokenizer = tiny_lm.tokenizer
    text = _drive(calculator, tokenizer, "Natalia sold 48/2 =", [" $", "9", "9", " clips"])
    assert text == "Natalia sold 48/2 = $24 clips"
    text = _drive(calculator, tokenizer, "Natalia sold 48/2 =", [" ", "9", "9", "."])
    assert text == "Natalia sold 48/2 = 24."
    assert arithmetic_steps(text + "\n#### 24") == [True]


def test_after_equals_no_number_is_the_models_and_no_digit_follows_the_calculators(calculator, tiny_lm):
    tokenizer = tiny_lm.tokenizer
    # the model would write its own (wrong) number at once, then another digit after the right one
    text = _drive(calculator, tokenizer, "So 7*6 =", ["4", "1", "1", "3", " left"])
    assert text.startswith("So 7*6 = 42 ")  # masked "4" -> a space; "42" written; the digit "3" masked too
    assert arithmetic_steps(text) == [True]
    before = calculator.steps_completed
    _drive(calculator, tokenizer, "She is 7 =", [" ", "9"])  # no arithmetic: the model's own digits stand
    assert calculator.steps_completed == before


def test_equals_signs_of_code_are_not_steps(calculator, tiny_lm):
    text = _drive(calculator, tiny_lm.tokenizer, "x = 3\ny = x", [" ==", " y"])
    assert text == "x = 3\ny = x == y"
