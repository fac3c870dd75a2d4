"""The local half of the artifact store (the S3 half runs against SeaweedFS in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth_core.layout import run_prefix
from synth_core.store import LocalStore, S3Store, open_store

pytestmark = pytest.mark.unit


def test_round_trip_bytes_json_files_and_listing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    prefix = run_prefix("arith", "run1", "refresh")
    uri = store.put_bytes(f"{prefix}/a.bin", b"\x00\x01")
    store.put_json(f"{prefix}/sub/meta.json", {"b": 1, "a": [1, 2]})
    (tmp_path / "local.txt").write_text("hello")
    store.put_file(f"{prefix}/local.txt", tmp_path / "local.txt")

    assert uri == (tmp_path / "root/arith/run1/refresh/a.bin").as_uri()
    assert store.get_bytes(f"{prefix}/a.bin") == b"\x00\x01"
    assert store.get_json(f"{prefix}/sub/meta.json") == {"a": [1, 2], "b": 1}
    assert store.list("arith/run1") == [f"{prefix}/a.bin", f"{prefix}/local.txt", f"{prefix}/sub/meta.json"]
    assert store.list("arith/other") == []
    assert store.exists(f"{prefix}/local.txt") and not store.exists(f"{prefix}/nope")


def test_missing_key_and_bad_keys(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such artifact"):
        store.get_bytes("arith/run1/x.json")
    for bad in ("../escape", "/abs", "a/../b"):
        with pytest.raises(ValueError, match="relative"):
            store.put_bytes(bad, b"")
    with pytest.raises(ValueError, match="run id"):
        run_prefix("arith", "a/b", "refresh")


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("d/r/s/f", b"one")
    store.put_bytes("d/r/s/f", b"two")
    assert store.get_bytes("d/r/s/f") == b"two"
    assert [p.name for p in (tmp_path / "d/r/s").iterdir()] == ["f"]


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store("file://artifacts").root == (tmp_path / "artifacts").as_uri()
    assert open_store(f"file://{tmp_path}/abs").root == (tmp_path / "abs").as_uri()
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store) and s3.uri_for("d/r/s/k") == "s3://bucket/some/prefix/d/r/s/k"


def test_file_uris_keep_partition_and_run_folders_readable(tmp_path: Path) -> None:
    """A URI printed in a log or a manifest must work when pasted into a shell (no %3D for '=')."""
    store = LocalStore(tmp_path / "published")
    uri = store.uri_for("domain=boolq/date=2026-01-05/run=manual__2026-12-01T09:23:08/manifest.json")
    assert uri == f"file://{tmp_path}/published/domain=boolq/date=2026-01-05/run=manual__2026-12-01T09:23:08/manifest.json"
    store.put_bytes("domain=boolq/x.txt", b"x")
    assert open_store(store.uri_for("domain=boolq")).get_bytes("x.txt") == b"x"  # the URI opens again


def test_an_unreachable_artifact_store_ends_in_one_json_line_not_a_traceback(tmp_path: Path, monkeypatch, capsys):
    import json

    from synth_core.cli import main
    from tests.conftest import domain_config

    monkeypatch.setenv("SYNTH_S3_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    domain_config(tmp_path)  # writes targets.jsonl
    path = tmp_path / "d.yaml"
    path.write_text(f"name: arith\nsource: {{uri: {tmp_path / 'targets.jsonl'}, "
                    "text_template: \"{question} {answer}\"}\nstore: {uri: \"s3://artifacts/x\"}\n")
    assert main(["refresh", str(path), "--run-id", "r1"]) == 1
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["kind"] == "store_unreachable" and "s3://artifacts/x/arith/r1" in line["error"]
