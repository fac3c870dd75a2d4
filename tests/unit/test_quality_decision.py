"""The gate's decision rule, calibrated MAUVE on precomputed features, and GateConfig checks: no models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from synth_core.commands.gate import EXIT_CODES
from synth_core.config import ConfigError, GateConfig, from_dict
from synth_core.quality import calibrated_mauve, decide
from synth_core.quality.decision import mauve_bar

pytestmark = pytest.mark.unit

CLEAN = {"leakage_rate": 0.0, "duplicate_rate": 0.0, "length_ks": 0.1}


def _outcomes(criteria) -> dict[str, str]:
    return {c.metric: c.outcome for c in criteria}


@pytest.mark.parametrize(("score", "expected"), [(0.80, "pass"), (0.76, "pass"), (0.70, "review"), (0.60, "fail")])
def test_mauve_bar_is_a_fraction_of_the_reference_with_a_review_band(score, expected):
    gate = GateConfig(mauve_floor=0.2, mauve_fraction_of_reference=0.8, review_band=0.1)
    assert mauve_bar(0.95, gate) == pytest.approx(0.76)
    decision, criteria = decide({**CLEAN, "mauve": score, "mauve_reference": 0.95}, gate)
    assert decision == expected and _outcomes(criteria)["mauve"] == expected


def test_the_absolute_floor_applies_when_the_reference_is_low():
    gate = GateConfig(mauve_floor=0.5, mauve_fraction_of_reference=0.8, review_band=0.1)
    decision, criteria = decide({**CLEAN, "mauve": 0.45, "mauve_reference": 0.3}, gate)
    mauve = next(c for c in criteria if c.metric == "mauve")
    assert decision == "review" and mauve.threshold == 0.5 and "gate.mauve_floor=0.5" in mauve.reason


def test_leakage_and_duplicates_fail_whatever_mauve_says():
    gate = GateConfig(max_leakage_rate=0.01, max_duplicate_rate=0.5)
    decision, criteria = decide({**CLEAN, "leakage_rate": 0.02, "mauve": 0.99, "mauve_reference": 0.99}, gate)
    assert decision == "fail" and _outcomes(criteria)["leakage_rate"] == "fail"
    decision, _ = decide({**CLEAN, "duplicate_rate": 0.6, "mauve": 0.99, "mauve_reference": 0.99}, gate)
    assert decision == "fail"


def test_a_length_shift_sends_the_batch_to_review():
    decision, criteria = decide({**CLEAN, "length_ks": 0.5, "mauve": 0.9, "mauve_reference": 0.9}, GateConfig())
    assert decision == "review" and _outcomes(criteria)["length_ks"] == "review"


def test_unscored_mauve_fails_with_the_setting_named():
    decision, criteria = decide({"leakage_rate": 1.0, "duplicate_rate": 0.0, "kept_rows": 3}, GateConfig())
    mauve = next(c for c in criteria if c.metric == "mauve")
    assert decision == "fail" and mauve.value is None and "gate.min_rows=20" in mauve.reason


def test_exit_codes_are_distinct_per_decision():
    assert EXIT_CODES == {"pass": 0, "review": 3, "fail": 4}


def test_calibrated_mauve_on_precomputed_features_separates_shifted_data():
    rng = np.random.default_rng(0)
    heldout, train = rng.normal(size=(120, 16)), rng.normal(size=(120, 16))
    shifted = rng.normal(size=(120, 16)) + 3.0
    with threadpool_limits(limits=1):  # k-means on 240 points: extra OpenMP threads only spin
        result = calibrated_mauve(shifted, train, heldout, num_buckets="auto", scaling_factor=5.0, seeds=(0, 1))
    assert result.settings.num_buckets == 12 and result.settings.sample_size == 120
    assert result.synthetic.mean < 0.2 < 0.8 < result.reference.mean
    assert len(result.reference.per_seed) == 2
    with pytest.raises(ValueError, match="sample sizes differ"):
        calibrated_mauve(shifted[:100], train, heldout)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("pii_patterns", ["email", "passport"], r"gate.pii_patterns\[1\]='passport': unknown PII pattern"),
    ("pii_patterns", ["regex:(unclosed"], r"gate.pii_patterns\[0\]='regex:\(unclosed': not a valid regex"),
    ("mauve_num_buckets", "many", r"gate.mauve_num_buckets='many'"),
    ("length_quantiles", [0.9, 0.1], r"gate.length_quantiles=\[0.9, 0.1\]"),
    ("max_length_ks", 1.5, r"gate.max_length_ks=1.5: must be in \[0, 1\]"),
])
def test_bad_gate_settings_are_refused_on_load(key, value, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"name": "demo", "source": {"uri": "x.jsonl"}, "gate": {key: value}}, origin="demo.yaml")


def test_new_gate_settings_have_defaults_and_help():
    gate = GateConfig(pii_patterns=["email", r"regex:\bACME-\d{6}\b"])
    assert gate.max_length_ks == 0.3 and gate.sample_seed == 0
    help_texts = {f.name: f.metadata.get("help") for f in dataclasses.fields(GateConfig)}
    assert help_texts["max_length_ks"] and help_texts["sample_seed"] and help_texts["pii_patterns"]
