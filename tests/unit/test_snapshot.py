"""`refresh`: immutable snapshot with lineage and split, read back by later steps; `synth refresh` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth_core.cli import main
from synth_core.snapshot import read_lineage, read_snapshot, read_target_split, refresh
from synth_core.sources import load_target_split
from synth_core.store import LocalStore
from tests.conftest import domain_config

pytestmark = pytest.mark.unit


def test_refresh_writes_snapshot_and_lineage(tmp_path: Path, artifact_store: LocalStore) -> None:
    config = domain_config(tmp_path)
    summary = refresh(config, "run1", artifact_store)
    lineage = read_lineage(config, "run1", artifact_store)
    snapshot = read_snapshot(config, "run1", artifact_store)

    assert summary["rows"] == lineage["rows"] == len(snapshot) == 40
    assert (summary["train_rows"], summary["heldout_rows"], summary["validation_rows"]) == (26, 10, 4)
    assert summary["snapshot_uri"].endswith("arith/run1/refresh/target_snapshot.parquet")
    assert list(snapshot.columns) == ["text", "topic", "split"]
    assert lineage["source"]["uri"] == (tmp_path / "targets.jsonl").as_uri()
    assert lineage["source_schema"] == {"question": "str", "answer": "str", "topic": "str",
                                        "row_id": "int64"}
    assert lineage["split"] == {"seed": 7, "holdout_fraction": 0.25, "validation_fraction": 0.1, "train_rows": 26,
                                "heldout_rows": 10, "validation_rows": 4}
    assert lineage["taken_at"] and len(lineage["snapshot_sha256"]) == 64
    assert read_target_split(config, "run1", artifact_store) == load_target_split(config)


def test_same_data_same_hash_and_a_run_snapshot_is_immutable(tmp_path: Path, artifact_store: LocalStore) -> None:
    config = domain_config(tmp_path)
    first = refresh(config, "run1", artifact_store)
    assert refresh(config, "run2", artifact_store)["snapshot_hash"] == first["snapshot_hash"]
    (tmp_path / "targets.jsonl").write_text('{"question": "changed", "answer": "yes", "topic": "t"}\n')
    again = refresh(config, "run1", artifact_store)
    assert again["reused"] and again["snapshot_hash"] == first["snapshot_hash"]
    assert refresh(config, "run3", artifact_store)["snapshot_hash"] != first["snapshot_hash"]


def test_reading_a_missing_snapshot_says_what_to_run(tmp_path: Path, artifact_store: LocalStore) -> None:
    with pytest.raises(FileNotFoundError, match="run `synth refresh` first"):
        read_snapshot(domain_config(tmp_path), "nope", artifact_store)


def test_cli_refresh_ends_with_a_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = domain_config(tmp_path)
    yaml_path = tmp_path / "arith.yaml"
    yaml_path.write_text(json.dumps({k: v for k, v in config.to_dict().items() if k != "base_dir"}))
    assert main(["refresh", str(yaml_path), "--run-id", "cli1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["command"] == "refresh" and summary["rows"] == 40 and not summary["reused"]
    assert (tmp_path / "artifacts/arith/cli1/refresh/lineage.json").is_file()


def test_later_steps_run_with_the_config_the_first_step_recorded(tmp_path, artifact_store) -> None:
    """Editing the YAML mid-run changes nothing for the run: its first step recorded the resolved config."""
    from synth_core.pipeline import RunContext, recorded_run_config, refresh_targets

    config = domain_config(tmp_path)
    run = RunContext("run-recorded", "2025-01-31")
    assert recorded_run_config(config, run, artifact_store) is config  # nothing recorded yet
    refresh_targets(config, run, artifact_store)
    edited = config.with_overrides({"generation.temperature": 0.3, "generation.shards": 7})
    again = recorded_run_config(edited, run, artifact_store)
    assert again == config and again.generation.shards == config.generation.shards
