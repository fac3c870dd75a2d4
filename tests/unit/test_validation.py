"""Great Expectations suites from the domain YAML, run on real snapshots and synthetic batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_core.config import ConfigError, load_domain
from synth_core.expectations import expectation_specs
from synth_core.snapshot import refresh
from synth_core.store import LocalStore
from synth_core.validation import ValidationFailed, validate_synthetic, validate_targets
from tests.conftest import TARGET_ROWS, domain_config, write_generated_run

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _refresh_rows(tmp_path: Path, store: LocalStore, rows: list[dict], **sections: dict):
    (tmp_path / "targets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = domain_config(tmp_path, **sections)
    refresh(config, "run1", store)
    return config


def _failure(config, store: LocalStore) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        validate_targets(config, "run1", store)
    assert store.exists("arith/run1/validate_targets/validation.json")
    assert store.exists("arith/run1/validate_targets/validation.html")
    return info.value


def test_the_suite_comes_from_the_yaml(tmp_path: Path) -> None:
    config = domain_config(tmp_path, validation={"extra_expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "topic", "value_set": ["sums"]},
         "on": "targets"}]})
    checks = [s["meta"]["check"] for s in expectation_specs(config, "targets")]
    assert checks == ["required:text", "required:split", "required:topic", "row_count", "not_null", "text_length",
                      "unique_text", "pii:email", "pii:phone", "pii:card_number", "extra[0]"]
    assert [s["meta"]["check"] for s in expectation_specs(config, "synthetic")][:2] == ["required:text", "row_count"]
    assert "extra[0]" not in [s["meta"]["check"] for s in expectation_specs(config, "synthetic")]


def test_a_clean_snapshot_passes_and_the_report_is_saved(tmp_path: Path, artifact_store: LocalStore) -> None:
    config = domain_config(tmp_path)
    refresh(config, "run1", artifact_store)
    summary = validate_targets(config, "run1", artifact_store)
    assert summary["success"] and summary["evaluated"] == 10 and summary["rows"] == 40
    result = artifact_store.get_json("arith/run1/validate_targets/validation.json")
    assert result["success"] and result["meta"]["batch"] == "targets"
    assert "PASSED" in artifact_store.get_bytes("arith/run1/validate_targets/validation.html").decode()


def test_nulls_are_named(tmp_path: Path, artifact_store: LocalStore) -> None:
    rows = [*TARGET_ROWS[:20], {"question": None, "answer": "x", "topic": "sums"}]
    failure = _failure(_refresh_rows(tmp_path, artifact_store, rows), artifact_store)
    assert [f["expectation"] for f in failure.failures] == ["expect_column_values_to_not_be_null"]
    assert failure.failures[0]["observed"]["unexpected_count"] == 1
    assert "expect_column_values_to_not_be_null(text) observed" in str(failure)


def test_duplicates_are_named(tmp_path: Path, artifact_store: LocalStore) -> None:
    failure = _failure(_refresh_rows(tmp_path, artifact_store, TARGET_ROWS[:20] + TARGET_ROWS[:2]), artifact_store)
    assert [f["check"] for f in failure.failures] == ["unique_text"]
    assert failure.failures[0]["observed"]["unexpected_count"] == 4
    assert "expect_column_values_to_be_unique(text)" in str(failure)


def test_an_email_is_named_but_never_copied(tmp_path: Path, artifact_store: LocalStore) -> None:
    rows = [*TARGET_ROWS[:20], {"question": "Mail jane.doe@example.com?", "answer": "No.", "topic": "sums"}]
    failure = _failure(_refresh_rows(tmp_path, artifact_store, rows), artifact_store)
    assert [(f["expectation"], f["check"]) for f in failure.failures] == [
        ("expect_column_values_to_be_in_set", "pii:email")]
    assert failure.failures[0]["observed"]["unexpected_count"] == 1
    saved = artifact_store.get_bytes("arith/run1/validate_targets/validation.json").decode()
    assert "jane.doe" not in saved and "jane.doe" not in str(failure)


def test_numbers_that_only_look_like_pii_pass(tmp_path: Path, artifact_store: LocalStore) -> None:
    rows = [*TARGET_ROWS[:20], {"question": "Order 1234567812345678: what is 6000-2000?", "answer": "4000.",
                                "topic": "sums"}]
    assert validate_targets(_refresh_rows(tmp_path, artifact_store, rows), "run1", artifact_store)["success"]


def test_too_few_rows_are_named(tmp_path: Path, artifact_store: LocalStore) -> None:
    failure = _failure(_refresh_rows(tmp_path, artifact_store, TARGET_ROWS[:5]), artifact_store)
    assert failure.failures == [{"expectation": "expect_table_row_count_to_be_between", "check": "row_count",
                                 "column": None, "observed": 5}]
    assert "expect_table_row_count_to_be_between(row_count) observed 5" in str(failure)


def test_extra_expectations_in_gx_terms(tmp_path: Path, artifact_store: LocalStore) -> None:
    extra = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "topic", "value_set": ["sums"]}}
    config = _refresh_rows(tmp_path, artifact_store, TARGET_ROWS, validation={"extra_expectations": [extra]})
    failure = _failure(config, artifact_store)
    assert [f["check"] for f in failure.failures] == ["extra[0]"]
    unknown = domain_config(tmp_path, validation={"extra_expectations": [{"type": "expect_the_moon"}]})
    with pytest.raises(ConfigError, match=r"validation.extra_expectations\[0\]: expect_the_moon"):
        validate_targets(unknown, "run1", artifact_store)


@pytest.mark.parametrize(("validation", "message"), [
    ({"forbid_patterns": ["emial"]}, r"validation.forbid_patterns\[0\]='emial': must be one of"),
    ({"forbid_patterns": ["regex:(unclosed"]}, "not a valid regex"),
    ({"extra_expectations": [{"type": "not_an_expectation"}]}, r"extra_expectations\[0\].type"),
    ({"extra_expectations": [{"type": "expect_x", "on": "everything"}]}, r"extra_expectations\[0\].on"),
])
def test_validation_config_errors(tmp_path: Path, validation: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        domain_config(tmp_path, validation=validation)


def test_synthetic_batch_is_validated_from_the_generate_prefix(tmp_path: Path, artifact_store: LocalStore) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    assert validate_synthetic(config, "run1", artifact_store)["rows"] == 30
    write_generated_run(config, "run2", artifact_store, parts=1, rows_per_part=3)
    with pytest.raises(ValidationFailed, match="arith synthetic validation failed 1 of 8"):
        validate_synthetic(config, "run2", artifact_store)


@pytest.mark.parametrize("domain", ["gsm8k", "boolq", "mbpp"])
def test_seed_domains_pass_their_own_validation(domain: str, artifact_store: LocalStore) -> None:
    config = load_domain(REPO / "domains" / f"{domain}.yaml")
    refresh(config, "seed", artifact_store)
    assert validate_targets(config, "seed", artifact_store)["success"]


def test_row_checks_run_on_the_real_targets_and_a_check_they_fail_is_a_config_error(
        tmp_path: Path, artifact_store: LocalStore) -> None:
    answer = {"name": "answer_line", "kind": "regex", "pattern": r"\nAnswer: It is \d+\.\Z"}
    config = domain_config(tmp_path).with_overrides({"checks": [answer]})
    refresh(config, "run1", artifact_store)
    assert validate_targets(config, "run1", artifact_store)["check_pass_rates"] == {"answer_line": 1.0}
    wrong = config.with_overrides({"checks": [{**answer, "pattern": r"\nAnswer: \d+\Z"}]})
    with pytest.raises(ConfigError, match=r"arith: the domain's checks reject its own real targets: check "
                                          r"'answer_line' .* passes only 0% of the 40 real target rows .*e\.g\. "
                                          r"'Question: What is 0 plus 1\?"):
        validate_targets(wrong, "run1", artifact_store)


def test_a_run_that_could_never_publish_is_refused_naming_the_settings(tmp_path: Path) -> None:
    from synth_core.pipeline import check_feasible

    config = domain_config(tmp_path)
    check_feasible(config)
    with pytest.raises(ConfigError, match=r"arith: generation.num_samples=5 \(YAML or the num_samples param\) is "
                                          r"below gate.min_rows=20: the gate could never score the batch; ask for at least 20"):
        check_feasible(config.with_overrides({"generation.num_samples": 5}))
    with pytest.raises(ConfigError, match=r"num_samples=25 .* below validation.min_rows=30: the approved batch could "
                                          r"never pass the synthetic validation"):
        check_feasible(config.with_overrides({"generation.num_samples": 25, "validation.min_rows": 30}))
