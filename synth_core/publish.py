"""Atomic, idempotent publishing of an approved synthetic batch, and quarantine of a rejected one.

Layout at the destination (s3:// or file://):
    domain=<d>/date=<ds>/run=<run_id>/part-00000.parquet ...  data files, copied byte for byte
    domain=<d>/date=<ds>/run=<run_id>/README.md             dataset card
    domain=<d>/date=<ds>/run=<run_id>/manifest.json         written last: the commit
    domain=<d>/_latest.json                                 moved only after the manifest exists
Readers trust only prefixes with a manifest, so a crash part-way leaves nothing that looks published.
A re-run of the same run id writes the same keys; once the manifest exists it is a no-op, and a run id
already committed under another date is not published again. `_latest.json` is updated by
compare-and-swap, so concurrent publishes leave it on the newest date; a roll-back records the run it
withdrew, which later publishes never make latest again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from synth_core.config import DomainConfig
from synth_core.dataset_card import render_dataset_card
from synth_core.expectations import failed_expectations
from synth_core.layout import (
    DATASET_CARD,
    GATE_REPORT_HTML,
    GATE_REPORT_JSON,
    MANIFEST,
    VALIDATE_SYNTHETIC_STEP,
    VALIDATION_JSON,
    gate_report_html_key,
    gate_report_key,
    latest_key,
    manifests_by_run,
    partition_prefix,
    run_prefix,
)
from synth_core.snapshot import read_lineage, snapshot_uri
from synth_core.store import ArtifactStore, TransientStoreError, WriteConflict, json_bytes, open_store
from synth_core.validation import ValidationFailed, synthetic_batch_keys, validate_synthetic

log = logging.getLogger(__name__)
T = TypeVar("T")

APPROVED = ("approve", "approved", "pass", "passed", "accept", "accepted")
NEEDS_REVIEW = ("review", "borderline")


class PublishRefused(RuntimeError):
    """Deterministic: the batch is not approved, or the run id was already published with other data."""


class PublishFailed(RuntimeError):
    """Transient: the destination failed mid-write (after botocore's own transport retries). Nothing is
    visible as published; the task's retry (Airflow's, the one retry layer for a whole step) completes it."""


def read_gate_report(config: DomainConfig, run_id: str, store: ArtifactStore) -> dict[str, Any]:
    return store.get_json(gate_report_key(config.name, run_id))


def _check_approved(report: dict[str, Any], approved_by: str | None) -> str:
    decision = str(report.get("decision", "")).lower()
    if decision in APPROVED or (decision in NEEDS_REVIEW and approved_by):
        return decision
    if decision in NEEDS_REVIEW:
        raise PublishRefused(f"gate decision {decision!r} needs a reviewer's approval (approved_by) to publish")
    raise PublishRefused(f"gate decision {decision!r} is not an approval; quarantine the batch instead")


def _ensure_synthetic_valid(config: DomainConfig, run_id: str, store: ArtifactStore) -> str:
    """The synthetic batch's validation result, running it if this run has none yet."""
    key = f"{run_prefix(config.name, run_id, VALIDATE_SYNTHETIC_STEP)}/{VALIDATION_JSON}"
    if not store.exists(key):
        return validate_synthetic(config, run_id, store)["result_uri"]
    result = store.get_json(key)
    if not result["success"]:
        failures = failed_expectations(result)
        raise ValidationFailed(f"{config.name} synthetic batch failed validation ({len(failures)} expectations); "
                               f"see {store.uri_for(key)}", failures, store.uri_for(key))
    return store.uri_for(key)


def _file_entry(name: str, data: bytes, rows: int | None) -> dict[str, Any]:
    return {"key": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": rows}


def _batch_parts(config: DomainConfig, run_id: str, store: ArtifactStore
                 ) -> tuple[dict[str, bytes], list[dict], dict[str, str]]:
    """The batch's Parquet files renamed part-NNNNN.parquet, their manifest entries, and each one's key in `store`."""
    import pyarrow.parquet as pq

    parts, entries, sources = {}, [], {}
    for i, key in enumerate(synthetic_batch_keys(config, run_id, store)):
        data = store.get_bytes(key)
        name = f"part-{i:05d}.parquet"
        parts[name], sources[name] = data, key
        entries.append({**_file_entry(name, data, pq.ParquetFile(io.BytesIO(data)).metadata.num_rows),
                        "source": store.uri_for(key)})
    return parts, entries, sources


def _checkpoint_hash(report: dict[str, Any], parts: dict[str, bytes]) -> str | None:
    """From the gate report's identities, else the batch's `checkpoint_hash` provenance column."""
    import pyarrow.parquet as pq

    for section in (report, report.get("identities", {}), report.get("lineage", {})):
        if section.get("checkpoint_hash"):
            return section["checkpoint_hash"]
    values = {v for data in parts.values() if "checkpoint_hash" in pq.ParquetFile(io.BytesIO(data)).schema.names
              for v in pq.read_table(io.BytesIO(data), columns=["checkpoint_hash"]).column(0).to_pylist()}
    return values.pop() if len(values) == 1 else None


def _transactionally(action: Callable[[], T], what: str) -> T:
    """Run an idempotent write; a transient store error becomes `PublishFailed`, which says what is safe."""
    try:
        return action()
    except TransientStoreError as exc:
        raise PublishFailed(f"{what} failed: {exc}. It is not published: readers only trust a prefix with "
                            f"{MANIFEST}; retrying the task (or re-running the same run id) completes it") from exc


def _commit(dest: ArtifactStore, prefix: str, files: dict[str, bytes], manifest: dict[str, Any],
            source: ArtifactStore, source_keys: dict[str, str]) -> tuple[bool, str, str]:
    """Write files, then the manifest: (True, manifest sha, prefix). A file read from `source` (its key in
    `source_keys`) is copied from there server-side where the destination can. A run id commits once per destination,
    whatever its date: when the manifest's run id is already committed, here or under another date,
    nothing is written and the answer is (False, that manifest's sha, its prefix)."""
    committed_key = manifests_by_run(dest.list(f"domain={manifest['domain']}")).get(manifest["run_id"])
    if committed_key:
        existing_bytes = dest.get_bytes(committed_key)
        committed = committed_key.rsplit("/", 1)[0]
        existing = json.loads(existing_bytes)
        if committed == prefix and [f["sha256"] for f in existing["files"]] != [f["sha256"] for f in manifest["files"]]:
            raise PublishRefused(f"{dest.uri_for(prefix)} is already committed with different files; "
                                 f"a run id publishes once")
        return False, hashlib.sha256(existing_bytes).hexdigest(), committed
    manifest_key = f"{prefix}/{MANIFEST}"
    for name, data in files.items():
        if name in source_keys:
            dest.put_copy(f"{prefix}/{name}", data, source, source_keys[name])
        else:
            dest.put_bytes(f"{prefix}/{name}", data)
    dest.put_json(manifest_key, manifest)
    return True, hashlib.sha256(dest.get_bytes(manifest_key)).hexdigest(), prefix


LATEST_ATTEMPTS = 20  # compare-and-swap rounds on `_latest.json` before giving up (transient)


def _update_latest(dest: ArtifactStore, domain: str,
                   change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> dict[str, Any] | None:
    """Read-modify-write `_latest.json` as a compare-and-swap: `change` maps the current pointer (None if
    there is none) to the new one, or to None to leave it; on a conflict it is read and applied again."""
    key = latest_key(domain)
    for _ in range(LATEST_ATTEMPTS):
        current = dest.get_versioned(key)
        pointer = json.loads(current[0]) if current else None
        new = change(pointer)
        if new is None:
            return None
        try:
            dest.put_if(key, json_bytes(new), current[1] if current else None)
            return new
        except WriteConflict:
            log.info("%s changed while it was being updated; reading it again", dest.uri_for(key))
    raise TransientStoreError(f"{dest.uri_for(key)}: {LATEST_ATTEMPTS} concurrent updates in a row; retry")


def _history(pointer: dict[str, Any] | None) -> dict[str, Any]:
    """What a pointer carries from one update to the next: withdrawn runs and the roll-backs that withdrew them."""
    return {"withdrawn": list((pointer or {}).get("withdrawn", [])),
            "rollbacks": list((pointer or {}).get("rollbacks", []))}


def _move_latest(dest: ArtifactStore, domain: str, ds: str, run_id: str, prefix: str, manifest_sha: str) -> bool:
    """Point `_latest.json` at this run unless it already names a later date (backfills don't move it back),
    already names this run, or a roll-back withdrew this run."""
    def newer(pointer: dict[str, Any] | None) -> dict[str, Any] | None:
        if pointer and (pointer["ds"] > ds or pointer["run_id"] == run_id or run_id in pointer.get("withdrawn", [])):
            return None
        return {"run_prefix": prefix, "manifest_key": f"{prefix}/{MANIFEST}", "manifest_sha256": manifest_sha,
                "ds": ds, "run_id": run_id, **_history(pointer)}

    return _update_latest(dest, domain, newer) is not None


def roll_back_latest(config: DomainConfig, run_id: str, ds: str, *, by: str,
                     destination: ArtifactStore | None = None) -> dict[str, Any]:
    """Point the domain's `_latest.json` back at an earlier published run (its manifest must exist).

    Readers follow `_latest.json`, so this withdraws a bad batch without deleting anything. The pointer
    records the withdrawn run (by whom, when); publishing a withdrawn run again never makes it latest.
    """
    dest = destination or open_store(config.publish.uri, config.publish.conn_id)
    prefix = partition_prefix(config.name, ds, run_id)
    manifest_key = f"{prefix}/{MANIFEST}"
    if not dest.exists(manifest_key):
        raise PublishRefused(f"cannot roll back to {dest.uri_for(prefix)}: it has no {MANIFEST}, so it was never "
                             "published")
    manifest_sha = hashlib.sha256(dest.get_bytes(manifest_key)).hexdigest()
    replaced: dict[str, Any] = {}

    def back(pointer: dict[str, Any] | None) -> dict[str, Any]:
        history = _history(pointer)
        replaced.update(run_id=pointer["run_id"] if pointer else None)
        withdrawn = [r for r in history["withdrawn"] if r != run_id]
        if pointer and pointer["run_id"] != run_id and pointer["run_id"] not in withdrawn:
            withdrawn.append(pointer["run_id"])
        record = {"withdrawn_run_id": replaced["run_id"], "restored_run_id": run_id, "by": by,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        return {"run_prefix": prefix, "manifest_key": manifest_key, "manifest_sha256": manifest_sha, "ds": ds,
                "run_id": run_id, "withdrawn": withdrawn, "rollbacks": [*history["rollbacks"], record]}

    pointer = _transactionally(lambda: _update_latest(dest, config.name, back),
                               f"roll back {config.name} to run {run_id}")
    return {"latest": dest.uri_for(latest_key(config.name)), "run_id": run_id, "ds": ds,
            "replaced_run_id": replaced["run_id"], "withdrawn": pointer["withdrawn"], "by": by}


def gate_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Decision, reasons and the scalar figures of a gate report (counts, rates, MAUVE means)."""
    figures = {**report.get("counts", {}), **report.get("rates", {})}
    metrics = {k: v for k, v in figures.items() if isinstance(v, (int, float, str, bool))}
    mauve = report.get("mauve") or {}
    for name, side in (("mauve", "synthetic"), ("mauve_reference", "reference")):
        if isinstance(mauve.get(side), dict):
            metrics[name] = mauve[side].get("mean")
    return {"decision": report.get("decision"), "reasons": report.get("reasons", []), "metrics": metrics}


def _manifest(config: DomainConfig, run_id: str, store: ArtifactStore, ds: str, status: str,
              report: dict[str, Any], parts: dict[str, bytes], entries: list[dict]) -> dict[str, Any]:
    return {
        "domain": config.name, "run_id": run_id, "ds": ds, "status": status,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": sum(e["rows"] for e in entries), "files": entries,
        "gate": gate_summary(report),
        "lineage": {"snapshot_hash": read_lineage(config, run_id, store)["snapshot_hash"],
                    "checkpoint_hash": _checkpoint_hash(report, parts), "config_hash": config.config_hash(),
                    "generator": config.generator.model, "embedder": config.generator.embedder,
                    "artifacts": store.uri_for(f"{config.name}/{run_id}")},
    }


def _report_lineage(config: DomainConfig, run_id: str, store: ArtifactStore, manifest: dict[str, Any],
                    uri: str) -> None:
    """Complete the run's OpenLineage run (see `lineage_events`) with the partition just written."""
    from synth_core import lineage_events

    lineage_events.run_completed(config, run_id, read_lineage(config, run_id, store),
                                 snapshot_uri(config, run_id, store), manifest, uri,
                                 sum(entry["size"] for entry in manifest["files"]))


def publish(config: DomainConfig, run_id: str, store: ArtifactStore, ds: str, approved_by: str | None = None,
            *, review_comment: str | None = None, destination: ArtifactStore | None = None) -> dict[str, Any]:
    """Publish the run's approved batch to `config.publish.uri`; a no-op if this run is already published."""
    report = read_gate_report(config, run_id, store)
    decision = _check_approved(report, approved_by)
    validation_uri = _ensure_synthetic_valid(config, run_id, store)
    parts, entries, sources = _batch_parts(config, run_id, store)
    manifest = _manifest(config, run_id, store, ds, "published", report, parts, entries)
    manifest["approved_by"] = approved_by
    manifest["review_comment"] = review_comment
    manifest["lineage"]["synthetic_validation"] = validation_uri
    card = render_dataset_card(config, manifest).encode()
    manifest["dataset_card"] = _file_entry(DATASET_CARD, card, None)
    dest = destination or open_store(config.publish.uri, config.publish.conn_id)
    prefix = partition_prefix(config.name, ds, run_id)

    def attempt() -> dict[str, Any]:
        written, manifest_sha, committed = _commit(dest, prefix, {**parts, DATASET_CARD: card}, manifest,
                                                   store, sources)
        result = {"published": written, "uri": dest.uri_for(committed), "manifest_sha256": manifest_sha}
        if committed != prefix:
            log.warning("run %s was already published as %s: a run id publishes once, so ds=%s changes nothing",
                        run_id, dest.uri_for(committed), ds)
            return {**result, "latest_updated": False, "already_published_as": committed}
        return {**result, "latest_updated": _move_latest(dest, config.name, ds, run_id, prefix, manifest_sha)}

    result = _transactionally(attempt, f"publish {config.name} run {run_id} to {dest.uri_for(prefix)}")
    _report_lineage(config, run_id, store, manifest, result["uri"])
    return {**result, "decision": decision, "files": len(entries), "rows": manifest["rows"]}


def quarantine(config: DomainConfig, run_id: str, store: ArtifactStore, ds: str, reason: str = "",
               *, destination: ArtifactStore | None = None) -> dict[str, Any]:
    """Keep a rejected batch with its gate report under the quarantine prefix; never moves `latest`."""
    report = read_gate_report(config, run_id, store)
    parts, entries, sources = _batch_parts(config, run_id, store)
    evidence_keys = {name: key for name, key in (
        (GATE_REPORT_JSON, gate_report_key(config.name, run_id)),
        (GATE_REPORT_HTML, gate_report_html_key(config.name, run_id)),
        (f"synthetic_{VALIDATION_JSON}", f"{run_prefix(config.name, run_id, VALIDATE_SYNTHETIC_STEP)}/{VALIDATION_JSON}"),
    ) if store.exists(key)}
    evidence = {name: store.get_bytes(key) for name, key in evidence_keys.items()}
    manifest = _manifest(config, run_id, store, ds, "quarantined", report, parts, entries)
    manifest["reason"] = reason or f"gate decision {report.get('decision')!r}"
    manifest["evidence"] = [_file_entry(name, data, None) for name, data in evidence.items()]
    dest = destination or open_store(config.publish.quarantine, config.publish.conn_id)
    prefix = partition_prefix(config.name, ds, run_id)
    written, manifest_sha, committed = _transactionally(
        lambda: _commit(dest, prefix, {**parts, **evidence}, manifest, store, {**sources, **evidence_keys}),
        f"quarantine {config.name} run {run_id} to {dest.uri_for(prefix)}")
    _report_lineage(config, run_id, store, manifest, dest.uri_for(committed))
    return {"quarantined": written, "uri": dest.uri_for(committed), "manifest_sha256": manifest_sha,
            "files": len(entries), "rows": manifest["rows"], "reason": manifest["reason"]}
