"""Publishing to a file:// destination: layout, manifest, card, idempotence, refusal, quarantine, crashes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.publish import PublishFailed, PublishRefused, publish, quarantine
from synth_core.store import LocalStore, TransientStoreError
from synth_core.validation import ValidationFailed
from tests.conftest import domain_config, write_generated_run

pytestmark = pytest.mark.unit
RUN = "domain=arith/date=2025-01-31/run=run1"


@pytest.fixture
def published(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "published")


def test_publish_writes_parts_card_manifest_and_latest(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    summary = publish(config, "run1", artifact_store, "2025-01-31")

    assert summary == {"published": True, "uri": published.uri_for(RUN), "decision": "pass", "files": 2, "rows": 30,
                       "latest_updated": True, "manifest_sha256": summary["manifest_sha256"]}
    assert published.list("domain=arith") == ["domain=arith/_latest.json"] + [f"{RUN}/{name}" for name in (
        "README.md", "manifest.json", "part-00000.parquet", "part-00001.parquet")]
    manifest = published.get_json(f"{RUN}/manifest.json")
    for entry in manifest["files"]:
        data = published.get_bytes(f"{RUN}/{entry['key']}")
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert entry["rows"] == len(pd.read_parquet(io.BytesIO(data))) == 15
    assert manifest["lineage"]["checkpoint_hash"] == "ckpt-abc"
    assert manifest["lineage"]["snapshot_hash"] == artifact_store.get_json("arith/run1/refresh/lineage.json")[
        "snapshot_hash"]
    assert manifest["gate"]["metrics"]["mauve"] == 0.81 and manifest["approved_by"] is None
    card = published.get_bytes(f"{RUN}/README.md")
    assert manifest["dataset_card"]["sha256"] == hashlib.sha256(card).hexdigest()
    assert "license: other" in card.decode() and "CC0 (test data)" in card.decode()
    from huggingface_hub import DatasetCard

    metadata = DatasetCard(card.decode()).data  # the front matter as the Hub (and `datasets`) read it
    assert metadata.license == "other" and "synthetic" in metadata.tags
    assert metadata.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "part-*.parquet"}]}]
    assert metadata.pretty_name.startswith("arith synthetic (")
    latest = published.get_json("domain=arith/_latest.json")
    assert latest["run_prefix"] == RUN
    assert latest["manifest_sha256"] == hashlib.sha256(published.get_bytes(f"{RUN}/manifest.json")).hexdigest()


def test_republish_is_a_no_op(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    first = publish(config, "run1", artifact_store, "2025-01-31")
    before = {k: published.get_bytes(k) for k in published.list("domain=arith")}
    second = publish(config, "run1", artifact_store, "2025-01-31")
    assert not second["published"] and second["manifest_sha256"] == first["manifest_sha256"]
    assert {k: published.get_bytes(k) for k in published.list("domain=arith")} == before


def test_review_needs_an_approver_and_fail_is_refused(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store, decision="review")
    with pytest.raises(PublishRefused, match="needs a reviewer's approval"):
        publish(config, "run1", artifact_store, "2025-01-31")
    assert publish(config, "run1", artifact_store, "2025-01-31", approved_by="ana")["published"]
    assert published.get_json(f"{RUN}/manifest.json")["approved_by"] == "ana"
    write_generated_run(config, "run2", artifact_store, decision="fail")
    with pytest.raises(PublishRefused, match="quarantine"):
        publish(config, "run2", artifact_store, "2025-01-31", approved_by="ana")
    assert not published.exists("domain=arith/date=2025-01-31/run=run2/manifest.json")


def test_an_invalid_synthetic_batch_is_not_published(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store, parts=1, rows_per_part=3)
    with pytest.raises(ValidationFailed, match="row_count"):
        publish(config, "run1", artifact_store, "2025-01-31")
    assert published.list("domain=arith") == []


def test_quarantine_keeps_the_evidence_and_never_moves_latest(tmp_path, artifact_store) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store, decision="fail")
    summary = quarantine(config, "run1", artifact_store, "2025-01-31")
    quarantined = LocalStore(tmp_path / "published" / "_quarantine")
    assert summary["quarantined"] and summary["reason"] == "gate decision 'fail'"
    manifest = quarantined.get_json(f"{RUN}/manifest.json")
    assert manifest["status"] == "quarantined"
    assert {e["key"] for e in manifest["evidence"]} == {"gate_report.json", "gate_report.html"}
    assert quarantined.get_json(f"{RUN}/gate_report.json")["decision"] == "fail"
    assert not LocalStore(tmp_path / "published").exists("domain=arith/_latest.json")


def test_latest_never_moves_back_to_an_older_date(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    write_generated_run(config, "run0", artifact_store)
    publish(config, "run1", artifact_store, "2025-01-31")
    assert not publish(config, "run0", artifact_store, "2025-01-24")["latest_updated"]
    assert published.get_json("domain=arith/_latest.json")["run_id"] == "run1"


class CrashingStore(LocalStore):
    """A destination that becomes unreachable after `ok_writes` writes."""

    def __init__(self, root: Path, ok_writes: int):
        super().__init__(root)
        self.ok_writes = ok_writes

    def put_bytes(self, key: str, data: bytes) -> str:
        if self.ok_writes == 0:
            raise TransientStoreError(f"write {key} failed: connection refused")
        self.ok_writes -= 1
        return super().put_bytes(key, data)


def test_a_crash_part_way_leaves_nothing_that_looks_published(tmp_path, artifact_store, published) -> None:
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    # no retry loop of our own: the first transient error ends the attempt; the task's retry completes it
    with pytest.raises(PublishFailed, match="connection refused. It is not published: readers only trust a prefix "
                                            "with manifest.json; retrying the task"):
        publish(config, "run1", artifact_store, "2025-01-31", destination=CrashingStore(tmp_path / "published", 1))
    assert published.list("domain=arith") == [f"{RUN}/part-00000.parquet"]
    assert publish(config, "run1", artifact_store, "2025-01-31")["published"]
    assert published.exists("domain=arith/_latest.json")


def test_cli_publish_and_quarantine(tmp_path, artifact_store, published, capsys) -> None:
    config = domain_config(tmp_path)
    yaml_path = tmp_path / "arith.yaml"
    yaml_path.write_text(json.dumps({k: v for k, v in config.to_dict().items() if k != "base_dir"}))
    write_generated_run(config, "run1", artifact_store, decision="fail")
    assert main(["publish", str(yaml_path), "--run-id", "run1", "--ds", "2025-01-31"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["kind"] == "PublishRefused"
    assert main(["publish", str(yaml_path), "--run-id", "run1", "--ds", "2025-01-31", "--quarantine"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["quarantined"]
    write_generated_run(config, "run2", artifact_store)
    assert main(["validate", str(yaml_path), "--run-id", "run2", "--batch", "synthetic"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["success"]
    assert main(["publish", str(yaml_path), "--run-id", "run2", "--ds", "2025-02-07"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["published"]


def test_roll_back_points_latest_at_an_earlier_published_run(tmp_path, artifact_store, published) -> None:
    from synth_core.publish import PublishRefused, roll_back_latest

    config = domain_config(tmp_path)
    write_generated_run(config, "run0", artifact_store)
    write_generated_run(config, "run1", artifact_store)
    publish(config, "run0", artifact_store, "2025-01-24")
    publish(config, "run1", artifact_store, "2025-01-31")
    result = roll_back_latest(config, "run0", "2025-01-24", by="carol")
    pointer = published.get_json("domain=arith/_latest.json")
    assert result["replaced_run_id"] == "run1" and pointer["run_id"] == "run0"
    assert pointer["withdrawn"] == ["run1"]
    (record,) = pointer["rollbacks"]
    assert record["withdrawn_run_id"] == "run1" and record["by"] == "carol" and record["at"]
    assert published.exists("domain=arith/date=2025-01-31/run=run1/manifest.json")  # nothing deleted
    with pytest.raises(PublishRefused, match="never published"):
        roll_back_latest(config, "run9", "2025-01-24", by="carol")

    # finding 5: re-publishing the withdrawn run is a no-op that leaves the roll-back in place
    again = publish(config, "run1", artifact_store, "2025-01-31")
    assert not again["published"] and not again["latest_updated"]
    assert published.get_json("domain=arith/_latest.json")["run_id"] == "run0"
    # a newer run still becomes latest, and carries the withdrawal with it
    write_generated_run(config, "run2", artifact_store)
    assert publish(config, "run2", artifact_store, "2025-02-07")["latest_updated"]
    pointer = published.get_json("domain=arith/_latest.json")
    assert pointer["run_id"] == "run2" and pointer["withdrawn"] == ["run1"] and len(pointer["rollbacks"]) == 1


def test_a_run_id_publishes_once_whatever_ds_says(tmp_path, artifact_store, published, capsys) -> None:
    """Finding 2: the same run id with another --ds is a no-op pointing at the first publish."""
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    first = publish(config, "run1", artifact_store, "2025-01-31")
    second = publish(config, "run1", artifact_store, "2025-02-01")
    assert first["published"] and not second["published"] and not second["latest_updated"]
    assert second["already_published_as"] == RUN and second["uri"] == first["uri"]
    assert [k for k in published.list("domain=arith") if k.endswith("manifest.json")] == [f"{RUN}/manifest.json"]
    assert published.get_json("domain=arith/_latest.json")["ds"] == "2025-01-31"
    quarantined = quarantine(config, "run1", artifact_store, "2025-01-31")
    assert not quarantine(config, "run1", artifact_store, "2025-02-02")["quarantined"]
    assert quarantined["quarantined"]


@pytest.mark.parametrize("ds", ["a b", "2026/11/05", "2026-11-5", "2026-13-01", "../../etc"])
def test_ds_must_be_an_iso_date(tmp_path, artifact_store, published, capsys, ds) -> None:
    """Finding 3: a bad or unpadded --ds is refused before anything runs, on every command and in the code."""
    config = domain_config(tmp_path)
    write_generated_run(config, "run1", artifact_store)
    yaml_path = tmp_path / "arith.yaml"
    yaml_path.write_text(json.dumps(config.to_dict()))
    for command in (["publish", str(yaml_path), "--run-id", "run1", "--ds", ds],
                    ["run", str(yaml_path), "--ds", ds]):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 2 and "not an ISO date YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not an ISO date"):
        publish(config, "run1", artifact_store, ds)
    assert not published.list("domain=arith")


def test_concurrent_publishes_leave_latest_on_the_newest_date(tmp_path, artifact_store, published) -> None:
    """Finding 4: racing read-modify-writes of _latest.json (forced by a slow store) keep the newest date."""
    import threading

    class SlowStore(LocalStore):
        """Every read of the pointer takes 50 ms, so the publishes read it before any of them writes."""

        def get_bytes(self, key):
            found = super().get_bytes(key)
            threading.Event().wait(0.05 if key.endswith("_latest.json") else 0)
            return found

        def get_versioned(self, key):
            found = super().get_versioned(key)
            threading.Event().wait(0.05)
            return found

    config = domain_config(tmp_path)
    # the newest run starts first: without a compare-and-swap the later, older writes would bury it
    runs = {"run2": "2025-02-07", "run1": "2025-01-31", "run3": "2025-01-24", "run4": "2025-02-01"}
    for run_id in runs:
        write_generated_run(config, run_id, artifact_store)
    dest = SlowStore(tmp_path / "published")
    threads = [threading.Thread(target=publish, args=(config, run_id, artifact_store, ds), kwargs={"destination": dest})
               for run_id, ds in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert published.get_json("domain=arith/_latest.json")["run_id"] == "run2"


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", "", "run..1"])
def test_a_hostile_run_id_is_refused_before_anything_runs(tmp_path, capsys, run_id) -> None:
    """Finding 6: a --run-id that is not a safe key segment is a usage error naming the value, not a traceback."""
    yaml_path = tmp_path / "arith.yaml"
    yaml_path.write_text(json.dumps(domain_config(tmp_path).to_dict()))
    for command in (["publish", str(yaml_path), "--run-id", run_id, "--ds", "2025-01-31"],
                    ["refresh", str(yaml_path), "--run-id", run_id], ["run", str(yaml_path), "--run-id", run_id]):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 2 and f"run id {run_id!r}" in capsys.readouterr().err


def test_a_publish_uri_with_dot_dot_is_refused_on_load(tmp_path) -> None:
    from synth_core.config import ConfigError, from_dict

    data = domain_config(tmp_path).to_dict()
    for key in ("uri", "quarantine_uri"):
        broken = {**data, "publish": {**data["publish"], key: "s3://bucket/data/../../other"}}
        with pytest.raises(ConfigError, match=rf"publish.{key}='s3://bucket/data/../../other': must not contain '..'"):
            from_dict(broken)
