"""Cheap exact checks of synthetic rows, where a domain has one.

- GSM8K: every `a op b = c` step of the worked answer is arithmetically right, and the row ends with
  a final answer after `####`.
- MBPP: the code parses as Python, and its own asserts pass when run in a separate, isolated
  interpreter with a timeout and memory/CPU limits.
- BoolQ: the row ends with `Answer: true` or `Answer: false`.
"""

from __future__ import annotations

import ast
import operator
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence

_NUMBER = r"-?\d+(?:\.\d+)?"
# digit runs are possessive: a plain `\d+` inside the repeated group can split a long run of digits in
# exponentially many ways before failing (a generated row of 30 digits hung the benchmark)
_EQUATION = re.compile(rf"((?:\d++(?:\.\d++)?|[\s()+\-*/x])+?)\s*=\s*\$?\s*({_NUMBER})(?![\d./])")
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


def gsm8k_equations(text: str) -> list[bool]:
    """For each arithmetic step `expr = value` in the text (with an operator in expr): does it hold?"""
    results = []
    for expr, value in _EQUATION.findall(text.replace(",", "").replace("$", "")):
        expr = expr.replace("x", "*").strip()
        if not re.search(r"\d\s*[-+*/]\s*\(?\s*-?\d", expr):
            continue
        try:
            computed = _evaluate(ast.parse(expr, mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError):
            continue
        results.append(abs(computed - float(value)) <= 1e-4 * max(1.0, abs(float(value))))
    return results


def check_gsm8k(texts: Sequence[str]) -> dict[str, float]:
    steps = [gsm8k_equations(t) for t in texts]
    with_steps = [s for s in steps if s]
    return {"final_answer_rate": sum(bool(re.search(rf"####\s*\$?{_NUMBER}", t)) for t in texts) / len(texts),
            "rows_with_arithmetic": len(with_steps) / len(texts),
            "arithmetic_consistent_rate": (sum(all(s) for s in with_steps) / len(with_steps)) if with_steps else 0.0}


def mbpp_code(text: str) -> str:
    """The program part of an MBPP-format row (everything after the `# Task:` line)."""
    lines = text.splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# Task:") else lines)


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (5, 5))


def run_asserts(code: str, timeout_s: float = 5.0) -> bool:
    """True if the code runs to the end (its asserts pass) in an isolated interpreter (-I, empty env,
    temp cwd, memory/CPU limits, wall-clock timeout)."""
    with tempfile.TemporaryDirectory() as cwd:
        try:
            done = subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, env={}, capture_output=True,
                                  timeout=timeout_s, preexec_fn=_limits, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def check_mbpp(texts: Sequence[str]) -> dict[str, float]:
    parsed = [code for code in map(mbpp_code, texts) if parses(code)]
    with_asserts = [c for c in parsed if re.search(r"^\s*assert\b", c, re.MULTILINE)]
    passing = sum(run_asserts(c) for c in with_asserts)
    return {"parses_rate": len(parsed) / len(texts), "rows_with_asserts": len(with_asserts) / len(texts),
            "asserts_pass_rate": passing / len(with_asserts) if with_asserts else 0.0}


def check_boolq(texts: Sequence[str]) -> dict[str, float]:
    answered = [re.search(r"Answer:\s*(true|false)\s*$", t.strip()) for t in texts]
    return {"answer_format_rate": sum(a is not None for a in answered) / len(texts)}


EXACT_CHECKS: dict[str, Callable[[Sequence[str]], dict[str, float]]] = {
    "gsm8k": check_gsm8k, "mbpp": check_mbpp, "boolq": check_boolq}
