"""Publishing and the artifact store against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from synth_core.publish import PublishFailed, publish
from synth_core.store import S3Store, StoreAccessError, open_store
from tests.conftest import domain_config, write_generated_run
from tests.integration.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedS3, use_s3

pytestmark = pytest.mark.integration
DS = "2025-01-31"


def _published_config(tmp_path: Path, prefix: str, **publish_settings):
    return domain_config(tmp_path, publish={"uri": prefix, **publish_settings}, store={"uri": f"{prefix}/artifacts"})


def test_artifact_store_round_trip_on_s3(s3_prefix: str) -> None:
    store = open_store(s3_prefix)
    store.put_json("arith/run1/refresh/lineage.json", {"rows": 3})
    store.put_bytes("arith/run1/generate/part.parquet", b"PAR1")
    for i in range(3):
        store.put_bytes(f"arith/run1/gate/{i}.txt", str(i).encode())
    assert store.get_json("arith/run1/refresh/lineage.json") == {"rows": 3}
    assert store.list("arith/run1/gate") == [f"arith/run1/gate/{i}.txt" for i in range(3)]
    assert len(store.list("arith")) == 5 and store.exists("arith/run1/generate/part.parquet")
    with pytest.raises(FileNotFoundError, match="no such artifact"):
        store.get_bytes("arith/run1/nope")


def test_publish_read_back_checksums_and_republish_no_op(tmp_path: Path, s3_prefix: str) -> None:
    config = _published_config(tmp_path, s3_prefix)
    store = open_store(config.store.uri)
    write_generated_run(config, "run1", store)
    first = publish(config, "run1", store, DS)
    run_prefix = f"domain=arith/date={DS}/run=run1"
    assert first["published"] and first["uri"] == f"{s3_prefix}/{run_prefix}"

    dest = open_store(s3_prefix)
    manifest = dest.get_json(f"{run_prefix}/manifest.json")
    for entry in manifest["files"]:
        data = dest.get_bytes(f"{run_prefix}/{entry['key']}")
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert len(pd.read_parquet(io.BytesIO(data))) == entry["rows"]
    assert dest.get_json("domain=arith/_latest.json")["manifest_sha256"] == first["manifest_sha256"]

    keys_before = {k: dest.get_bytes(k) for k in dest.list("domain=arith")}
    second = publish(config, "run1", store, DS)
    assert not second["published"] and second["manifest_sha256"] == first["manifest_sha256"]
    assert {k: dest.get_bytes(k) for k in dest.list("domain=arith")} == keys_before


def test_wrong_credentials_are_a_clear_error(tmp_path: Path, s3_server: SeaweedS3,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, s3_server, secret=SECRET_KEY + "-wrong")
    store = S3Store(f"s3://{BUCKET}/wrong", max_attempts=1)
    with pytest.raises(StoreAccessError, match=r"refused \(SignatureDoesNotMatch\): check the S3 credentials"):
        store.put_bytes("arith/run1/x", b"x")


def test_server_stopped_mid_publish_fails_and_nothing_looks_published(
        tmp_path: Path, own_s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, own_s3_server)
    prefix = f"s3://{BUCKET}/crash"
    config = _published_config(tmp_path, prefix)
    store = open_store(tmp_path.joinpath("artifacts").as_uri())
    write_generated_run(config, "run1", store)

    dest = S3Store(prefix, max_attempts=2)
    real_put = dest.put_bytes

    def put_then_crash(key: str, data: bytes) -> str:
        uri = real_put(key, data)
        own_s3_server.stop()  # the server dies right after the first data file lands
        return uri

    monkeypatch.setattr(dest, "put_bytes", put_then_crash)
    started = time.perf_counter()
    # botocore retries the request (max_attempts=2); the publish itself is retried by its Airflow task
    with pytest.raises(PublishFailed, match="It is not published: readers only trust a prefix with manifest.json"):
        publish(config, "run1", store, DS, destination=dest)
    print(f"\nmid-publish crash: failed cleanly after {time.perf_counter() - started:.1f}s")

    own_s3_server.start()
    print(f"restart took {own_s3_server.startup_s:.1f}s")
    reader = open_store(prefix)
    written = reader.list("domain=arith")
    assert written == [f"domain=arith/date={DS}/run=run1/part-00000.parquet"]
    assert not reader.exists(f"domain=arith/date={DS}/run=run1/manifest.json")
    assert not reader.exists("domain=arith/_latest.json")
    assert publish(config, "run1", store, DS)["published"]  # a re-run completes it
    assert reader.exists("domain=arith/_latest.json")


def test_conditional_writes_on_s3(s3_prefix: str) -> None:
    from synth_core.store import WriteConflict

    store = open_store(s3_prefix)
    store.put_if("pointer.json", b"1", None)
    with pytest.raises(WriteConflict):
        store.put_if("pointer.json", b"2", None)  # it exists now
    data, version = store.get_versioned("pointer.json")
    store.put_if("pointer.json", b"2", version)
    with pytest.raises(WriteConflict):
        store.put_if("pointer.json", b"3", version)  # stale version
    assert store.get_versioned("pointer.json")[0] == b"2" and store.get_versioned("missing.json") is None


TRIALS = 20


def test_racing_publishes_leave_latest_on_the_newest_run(tmp_path: Path, s3_prefix: str) -> None:
    """Two publishes of different runs at once, each read of `_latest.json` slowed by 300 ms, 20 times:
    the pointer names the newest run every time (docs/BENCHMARKS.md quotes this test)."""
    import threading

    class SlowS3(S3Store):
        def get_versioned(self, key):
            found = super().get_versioned(key)
            time.sleep(0.3)
            return found

    config = _published_config(tmp_path, s3_prefix)
    store = open_store(config.store.uri)
    for run_id in ("old", "new"):
        write_generated_run(config, run_id, store)
    outcomes = []
    for trial in range(TRIALS):
        dest = SlowS3(f"{s3_prefix}/race{trial}")
        racers = [threading.Thread(target=publish, args=(config, run_id, store, ds), kwargs={"destination": dest})
                  for run_id, ds in (("new", "2025-02-07"), ("old", "2025-01-31"))]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        outcomes.append(dest.get_json("domain=arith/_latest.json")["run_id"])
    assert outcomes == ["new"] * TRIALS


def test_an_invalid_s3_request_is_refused_not_retried(s3_prefix: str) -> None:
    """An S3 4xx answer other than not-found or a conflict (here a key over S3's 1024-byte limit) is a
    deterministic refusal, not a transient error that a retry would repeat."""
    store = open_store(s3_prefix)
    with pytest.raises(StoreAccessError, match="refused"):
        store.put_bytes("k" * 2000, b"x")


def _aws_connection(monkeypatch: pytest.MonkeyPatch, server: SeaweedS3, secret: str = SECRET_KEY) -> str:
    """An Airflow `aws` connection to `server`, and no credentials in the environment: only the connection
    (read by the Amazon provider's S3Hook) can reach it."""
    for name in ("SYNTH_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_S3", json.dumps({
        "conn_type": "aws", "login": ACCESS_KEY, "password": secret,
        "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"}}))
    return "synth_s3"


def test_an_airflow_aws_connection_reaches_s3_through_the_amazon_provider(tmp_path: Path, s3_server: SeaweedS3,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = _aws_connection(monkeypatch, s3_server)
    prefix = f"s3://{BUCKET}/conn-{time.time_ns()}"
    config = _published_config(tmp_path, prefix, conn_id=conn_id)
    store = open_store(config.store.uri, conn_id)
    assert type(store.client).__name__ == "S3"
    write_generated_run(config, "run1", store)
    summary = publish(config, "run1", store, DS, destination=open_store(prefix, conn_id))
    assert summary["published"] and summary["rows"] == 30
    assert s3_server.client().head_object(Bucket=BUCKET, Key=summary["uri"].removeprefix(f"s3://{BUCKET}/")
                                          + "/manifest.json")["ContentLength"] > 0


def test_a_connection_with_a_wrong_secret_is_a_clear_error(s3_server: SeaweedS3,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = _aws_connection(monkeypatch, s3_server, secret="wrong")
    store = open_store(f"s3://{BUCKET}/conn-wrong", conn_id, max_attempts=1)
    with pytest.raises(StoreAccessError, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        store.put_bytes("a.txt", b"x")


def test_large_objects_go_up_in_parts(s3_prefix: str, s3_server: SeaweedS3) -> None:
    store = S3Store(s3_prefix, multipart_bytes=5 * 2**20)  # S3's smallest part
    data = bytes(range(256)) * (11 * 2**20 // 256)  # 11 MiB: three parts
    uri = store.put_bytes("arith/run1/gate/batch/big.parquet", data)
    head = s3_server.client().head_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's ETag counts its parts
    assert hashlib.sha256(store.get_bytes("arith/run1/gate/batch/big.parquet")).digest() == hashlib.sha256(
        data).digest()
    small = store.put_bytes("arith/run1/gate/small.txt", b"x")
    assert "-" not in s3_server.client().head_object(Bucket=BUCKET, Key=small.removeprefix(f"s3://{BUCKET}/"))[
        "ETag"]


def _record_calls(store: S3Store) -> list[tuple[str, str]]:
    """(operation, key) of every S3 call `store` makes from now on, seen by botocore's own event hooks."""
    calls: list[tuple[str, str]] = []
    store.client.meta.events.register("provide-client-params.s3.*", lambda model, params, **_: calls.append(
        (model.name, params.get("Key", ""))))
    return calls


def test_publish_copies_parts_server_side_on_the_same_s3(tmp_path: Path, s3_prefix: str) -> None:
    config = _published_config(tmp_path, s3_prefix)
    store = open_store(config.store.uri)
    write_generated_run(config, "run1", store)
    dest = S3Store(s3_prefix)
    calls = _record_calls(dest)
    result = publish(config, "run1", store, DS, destination=dest)

    run_prefix = f"domain=arith/date={DS}/run=run1"
    copied = sorted(key.rsplit("/", 1)[-1] for op, key in calls if op == "CopyObject")
    uploaded = sorted(key.rsplit("/", 1)[-1] for op, key in calls if op == "PutObject")
    assert result["published"] and copied and all(name.startswith("part-") for name in copied)
    assert not [name for name in uploaded if name.startswith("part-")]  # no part went through this process
    manifest = dest.get_json(f"{run_prefix}/manifest.json")
    assert sorted(e["key"] for e in manifest["files"]) == copied
    for entry in manifest["files"]:
        assert hashlib.sha256(dest.get_bytes(f"{run_prefix}/{entry['key']}")).hexdigest() == entry["sha256"]


def test_a_server_side_copy_of_a_changed_source_uploads_the_bytes_read(s3_prefix: str) -> None:
    source, dest = S3Store(f"{s3_prefix}/src"), S3Store(f"{s3_prefix}/dst")
    source.put_bytes("part.parquet", b"changed after it was read")
    calls = _record_calls(dest)
    dest.put_copy("part.parquet", b"the bytes that were read", source, "part.parquet")
    assert dest.get_bytes("part.parquet") == b"the bytes that were read"
    assert [op for op, _ in calls if op in ("CopyObject", "PutObject")] == ["CopyObject", "PutObject"]
    # from a store that is not on this S3 (a local folder), the bytes are uploaded
    calls.clear()
    dest.put_copy("other.parquet", b"local bytes", open_store("file:///nonexistent"), "part.parquet")
    assert [op for op, _ in calls if op in ("CopyObject", "PutObject")] == ["PutObject"]
