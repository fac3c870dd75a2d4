"""Arithmetic steps in text (`48/2 = 24`): which hold, and what value completes an open one.

A leaf module: the `arithmetic` row check (quality/checks.py) and the calculator that writes steps'
results while sampling (generation/calculator.py) use the same reading of a step, so what the
calculator writes is what the check accepts. It imports nothing else of the project's, so the
sampler stays importable with only torch and transformers installed (scripts/gpu_check.sh).
"""

from __future__ import annotations

import ast
import operator
import re

# digit runs are possessive: a plain `\d+` inside the repeated group can split a long run of digits in
# exponentially many ways before failing (a generated row of 30 digits hung the benchmark)
_NUMBER = r"-?\d+(?:\.\d+)?"
_EXPRESSION = r"((?:\d++(?:\.\d++)?|[\s()+\-*/x])+?)\s*="
_EQUATION = re.compile(rf"{_EXPRESSION}\s*\$?\s*({_NUMBER})(?!\d|[./]\d)")
_OPEN_EQUATION = re.compile(rf"{_EXPRESSION}\s*\Z")  # a text that ends in a step's "=" (what the calculator completes)
_HAS_OPERATION = re.compile(r"\d\s*[-+*/]\s*\(?\s*-?\d")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.USub: operator.neg}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("not plain arithmetic")


def _plain(text: str) -> str:
    return text.replace(",", "").replace("$", "")


def _compute(expr: str) -> float | None:
    """The value of an arithmetic step's left side, or None when it is no step (no operation, not arithmetic)."""
    expr = expr.replace("x", "*").strip()
    if not _HAS_OPERATION.search(expr):
        return None
    try:
        return _evaluate(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _holds(computed: float, value: float) -> bool:
    return abs(computed - value) <= 1e-4 * max(1.0, abs(value))


def arithmetic_steps(text: str) -> list[bool]:
    """For each arithmetic step `expr = value` in the text (with an operator in expr): does it hold?"""
    results = []
    for expr, value in _EQUATION.findall(_plain(text)):
        computed = _compute(expr)
        if computed is not None:
            results.append(_holds(computed, float(value)))
    return results


def equation_result(text: str) -> str | None:
    """The value that makes the step a text ends in hold (`"... 48/2 ="` -> `"24"`), written with as few
    decimals as the arithmetic check accepts; None when the text does not end in an arithmetic step."""
    match = _OPEN_EQUATION.search(_plain(text)[-200:])
    computed = _compute(match.group(1)) if match else None
    if computed is None or abs(computed) >= 1e15:
        return None
    for decimals in range(7):
        written = f"{computed:.{decimals}f}"
        if _holds(computed, float(written)):
            return "0" if float(written) == 0 else written
    return None
