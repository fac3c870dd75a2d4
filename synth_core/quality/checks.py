"""Row checks a domain declares (`checks:` in its YAML): every published row must pass them all.

Three kinds, each configured by a CheckConfig:
- `regex`: the pattern must (or, with must_match false, must not) occur in the row;
- `arithmetic`: every `a op b = c` step in the row holds (rows without such steps pass);
- `python`: the row, or the first group of its `part` regex, parses as Python; with run_asserts the
  code must also run to the end in an isolated interpreter (-I, empty environment, temporary folder,
  memory/CPU limits, wall-clock timeout), so its own asserts pass.

The gate drops rows that fail a check before scoring; the real targets go through the same checks
when they are validated, so a wrong pattern is a configuration error, not a batch with no rows.
The quality benchmark reports the same checks' pass rates.
"""

from __future__ import annotations

import ast
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from synth_core.arithmetic import arithmetic_steps
from synth_core.config import CheckConfig

MIN_TARGET_PASS_RATE = 0.9  # a check fewer real target rows pass than this is a configuration error


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (5, 5))


def run_asserts(code: str, timeout_s: float = 5.0) -> bool:
    """True if the code runs to the end (its asserts pass) in an isolated interpreter."""
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
    except (SyntaxError, ValueError):  # ValueError: source with a NUL byte
        return False
    return True


class RowCheck:
    """One compiled check: `failure(row)` is None when the row passes, else why it does not."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self._pattern = re.compile(config.pattern) if config.pattern else None
        self._part = re.compile(config.part) if config.part else None

    @property
    def name(self) -> str:
        return self.config.name

    def describe(self) -> str:
        c = self.config
        if c.kind == "regex":
            return f"pattern {c.pattern!r} must {'' if c.must_match else 'not '}occur"
        if c.kind == "arithmetic":
            return "every 'a op b = c' step must hold"
        return "must parse as Python" + (" and its asserts must pass" if c.run_asserts else "")

    def failure(self, row: str) -> str | None:
        c = self.config
        if c.kind == "regex":
            found = self._pattern.search(row) is not None
            return None if found == c.must_match else f"check {c.name!r}: {self.describe()}"
        if c.kind == "arithmetic":
            wrong = arithmetic_steps(row).count(False)
            return None if not wrong else f"check {c.name!r}: {wrong} arithmetic step(s) do not hold"
        code = row
        if self._part is not None:
            match = self._part.search(row)
            if match is None:
                return f"check {c.name!r}: part {c.part!r} not found"
            code = match.group(1)
        if not parses(code):
            return f"check {c.name!r}: does not parse as Python"
        if c.run_asserts and not run_asserts(code):
            return f"check {c.name!r}: its asserts fail (or it errors or times out)"
        return None


@dataclass(frozen=True)
class CheckResults:
    """Per check, each row's failure (None: passed); from it, per row the first failing check's reason,
    per check its pass rate, and the share of rows passing all."""

    per_check: dict[str, list[str | None]]
    rows: int

    @cached_property
    def failures(self) -> list[str | None]:
        return [next((f[i] for f in self.per_check.values() if f[i] is not None), None) for i in range(self.rows)]

    @property
    def pass_rates(self) -> dict[str, float]:
        return {name: (fs.count(None) / len(fs) if fs else 1.0) for name, fs in self.per_check.items()}

    @property
    def valid_rate(self) -> float:
        return self.failures.count(None) / self.rows if self.rows else 1.0


class RowChecks:
    """The domain's declared checks, run together on a list of rows."""

    def __init__(self, configs: Sequence[CheckConfig]) -> None:
        self.checks = [RowCheck(c) for c in configs]

    def __bool__(self) -> bool:
        return bool(self.checks)

    def run(self, rows: Sequence[str]) -> CheckResults:
        return CheckResults({check.name: [check.failure(row) for row in rows] for check in self.checks}, len(rows))

    def target_problems(self, targets: Sequence[str], results: CheckResults | None = None,
                        examples: int = 2) -> list[str]:
        """Checks that fewer than MIN_TARGET_PASS_RATE of the real target rows pass, each with examples:
        such a check would drop good generated rows too, so it is a configuration error. `results`: these
        checks already run on `targets` (each check runs once; a python check may start a process per row)."""
        results = results or self.run(targets)
        problems = []
        for check in self.checks:
            failing = [row for row, failure in zip(targets, results.per_check[check.name], strict=True) if failure]
            rate = 1.0 - len(failing) / len(targets) if targets else 1.0
            if rate < MIN_TARGET_PASS_RATE:
                shown = "; ".join(repr(row[:120]) for row in failing[:examples])
                problems.append(f"check {check.name!r} ({check.describe()}) passes only {rate:.0%} of the "
                                f"{len(targets)} real target rows (at least {MIN_TARGET_PASS_RATE:.0%} must): "
                                f"e.g. {shown}")
        return problems
