"""Row checks (`checks:` in a domain YAML): each kind on hand-made and real rows, the real-targets
sanity check, and load-time errors that name the file, the check and the value."""

from __future__ import annotations

import json

import pytest
import yaml

from synth_core.arithmetic import arithmetic_steps
from synth_core.config import CheckConfig, ConfigError, load_domain
from synth_core.quality.checks import RowChecks, run_asserts
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit


def _rows(domain: str, n: int) -> list[dict]:
    lines = (REPO / "domains" / "data" / domain / "train.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def _seed_checks(domain: str) -> RowChecks:
    return RowChecks(load_domain(REPO / "domains" / f"{domain}.yaml").checks)


def test_regex_checks_must_and_must_not_match():
    checks = RowChecks([CheckConfig("answer", "regex", pattern=r"Answer: (true|false)\s*\Z"),
                        CheckConfig("no_url", "regex", pattern=r"https?://", must_match=False)])
    results = checks.run(["Question: is water wet?\nAnswer: true", "Question: is it?\nAnswer: maybe",
                          "Question: see http://x.y?\nAnswer: false"])
    assert results.failures[0] is None
    assert "check 'answer'" in results.failures[1] and "check 'no_url'" in results.failures[2]
    assert results.pass_rates == {"answer": pytest.approx(2 / 3), "no_url": pytest.approx(2 / 3)}
    assert results.valid_rate == pytest.approx(1 / 3)


def test_arithmetic_check_catches_a_wrong_step_and_stays_linear_on_digit_runs():
    assert arithmetic_steps("She sold 48/2 = 24 clips and 48+24 = 71 in all.\n#### 71") == [True, False]
    checks = RowChecks([CheckConfig("arithmetic", "arithmetic")])
    failures = checks.run(["48/2 = 24 and 48+24 = 72", "48+24 = 71", "no steps at all"]).failures
    assert failures[0] is None and "1 arithmetic step(s) do not hold" in failures[1] and failures[2] is None
    # a generated row of ~30 digits once hung the benchmark: the equation pattern backtracked exponentially
    assert arithmetic_steps("So the total is " + "1" * 5000 + " apples, and 3 + 4 = 7 pears") == [True]


def test_python_check_parses_a_part_and_runs_its_asserts_in_isolation(monkeypatch):
    parse = RowChecks([CheckConfig("code", "python", part=r"(?s)```\n(.*)```")])
    assert parse.run(["```\ndef f(x):\n    return x\n```"]).failures == [None]
    assert "does not parse" in parse.run(["```\ndef f(x) return x\n```"]).failures[0]
    assert "part" in parse.run(["no fence here"]).failures[0]
    run = RowChecks([CheckConfig("code", "python", run_asserts=True)])
    assert run.run(["def add(a, b):\n    return a + b\nassert add(1, 2) == 3"]).failures == [None]
    assert "asserts fail" in run.run(["def add(a, b):\n    return a - b\nassert add(1, 2) == 3"]).failures[0]
    monkeypatch.setenv("SECRET_TOKEN", "x")
    assert not run_asserts("while True: pass", timeout_s=1)
    assert run_asserts("import os\nassert 'SECRET_TOKEN' not in os.environ")


@pytest.mark.parametrize(("domain", "template"), [
    ("gsm8k", "Question: {question}\nAnswer: {answer}"),
    ("mbpp", "# Task: {text}\n{code}\n{tests}"),
    ("boolq", "Question: {question}\nAnswer: {answer}"),
])
def test_seed_domains_real_rows_pass_their_checks_and_broken_rows_do_not(domain, template):
    rows = [template.format(**{k: str(v).lower() if isinstance(v, bool) else v for k, v in r.items()})
            for r in _rows(domain, 60)]
    checks = _seed_checks(domain)
    assert checks.target_problems(rows) == [] and checks.run(rows).valid_rate >= 0.95
    cut = checks.run([r[: len(r) // 3] for r in rows])
    assert cut.valid_rate < 0.5


def test_mbpp_real_asserts_pass_in_the_sandbox():
    rows = [f"# Task: {r['text']}\n{r['code']}\n{r['tests']}" for r in _rows("mbpp", 8)]
    assert RowChecks([CheckConfig("asserts", "python", run_asserts=True)]).run(rows).valid_rate >= 0.85


def test_a_check_that_rejects_the_real_targets_is_named_with_examples():
    problems = RowChecks([CheckConfig("wrong", "regex", pattern=r"^Answer: yes$")]).target_problems(
        ["Question: a?\nAnswer: true", "Question: b?\nAnswer: false"])
    assert len(problems) == 1 and "check 'wrong'" in problems[0] and "passes only 0%" in problems[0]
    assert "'Question: a?\\nAnswer: true'" in problems[0]


@pytest.mark.parametrize(("check", "message"), [
    ({"name": "bad", "kind": "regex", "pattern": "(unclosed"}, r"checks\[0\] \(bad\).pattern='\(unclosed': not a valid regex"),
    ({"name": "bad", "kind": "spelling"}, r"checks\[0\].kind='spelling': must be one of \['regex', 'arithmetic', 'python'\]"),
    ({"name": "bad", "kind": "python", "part": "no group"}, r"checks\[0\] \(bad\).part='no group': needs a group"),
    ({"name": "bad", "kind": "regex"}, r"checks\[0\] \(bad\).pattern='': a regex check needs a pattern"),
    ({"name": "bad", "kind": "arithmetic", "pattern": "x"}, r"only regex checks take a pattern"),
])
def test_bad_checks_fail_on_load_naming_file_check_and_value(tmp_path, check, message):
    data = yaml.safe_load((REPO / "domains" / "boolq.yaml").read_text())
    data["source"]["uri"] = str(REPO / "domains" / "data" / "boolq" / "train.jsonl")
    data["checks"] = [check]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as error:
        load_domain(path)
    assert str(path) in str(error.value)
