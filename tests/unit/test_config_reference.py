"""Every config key is documented, and the committed JSON Schema is the one the dataclasses generate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from synth_core.cli import main
from synth_core.config import load_domain
from synth_core.config_reference import explain, json_schema, settings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "domains" / "domain.schema.json"


def test_every_key_has_help_text():
    undocumented = [s.key for s in settings() if not s.help]
    assert undocumented == [] and len(list(settings())) > 90


def test_committed_schema_is_generated_from_the_dataclasses():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run: synth config schema --out " + str(SCHEMA_FILE)


@pytest.mark.parametrize("domain", ["boolq", "gsm8k", "mbpp"])
def test_seed_domains_validate_against_the_schema(domain):
    data = yaml.safe_load((REPO / "domains" / f"{domain}.yaml").read_text())
    jsonschema.validate(data, json_schema())
    broken = {**data, "gate": {**data.get("gate", {}), "max_leakage_rate": 0.02}}
    with pytest.raises(jsonschema.ValidationError, match="max_leakage_rate"):
        jsonschema.validate(broken, json_schema())


def test_explain_marks_what_a_domain_changed(capsys):
    rows = {r["key"]: r for r in explain(load_domain(REPO / "domains" / "boolq.yaml"))}
    assert rows["generation.batch_size"]["changed"] and rows["generation.batch_size"]["value"] == 32
    assert not rows["generation.temperature"]["changed"] and rows["generation.temperature"]["value"] == "auto"
    assert not rows["gate.leakage_margin"]["changed"] and rows["gate.leakage_margin"]["help"]
    assert main(["config", "explain", str(REPO / "domains" / "boolq.yaml"), "--changed"]) == 0
    out = capsys.readouterr().out
    assert "* generation.batch_size = 32" in out and "gate.leakage_margin" not in out.split("{")[0]
