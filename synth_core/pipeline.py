"""The pipeline's steps as plain functions: `step(config, run, store, ...) -> small dict`.

The Airflow tasks and the `synth run` command both call these. Steps exchange artifacts only
through the artifact store under `<domain>/<run_id>/<step>/`; the dicts they return are small
references and metrics (they become XComs). Every step is idempotent per run id.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from synth_core.config import DomainConfig
from synth_core.layout import (
    APPROVED_BATCH_DIR,
    CURRENT_PROMPT_KEY,
    DECODING_CHOICE_KEY,
    DECODING_FILE,
    GATE_DROPPED_ROWS,
    GATE_PAGES_URL,
    GATE_REPORT_HTML,
    GATE_REPORT_JSON,
    GATE_STEP,
    GENERATE_STEP,
    REFRESH_STEP,
    RESOLVED_CONFIG,
    TRAIN_STEP,
    gate_page_run_path,
    review_request_key,
    run_prefix,
)
from synth_core.routing import PUBLISH, next_step, quarantine_reason
from synth_core.store import ArtifactStore, open_store

log = logging.getLogger(__name__)
HEX = re.compile(r"[0-9a-f]{16,}")  # content hashes: last in a key-figures line, shortened


@dataclass(frozen=True)
class RunContext:
    """Who is running: the run id (one artifact prefix), the logical date, and local scratch space."""

    run_id: str
    ds: str
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("SYNTH_WORK_DIR", tempfile.gettempdir()))
                           / "synth_work")
    force_retrain: bool = False

    def scratch(self, config: DomainConfig, step: str) -> Path:
        path = self.work_dir / config.name / self.run_id / step
        path.mkdir(parents=True, exist_ok=True)
        return path


def domain_store(config: DomainConfig) -> ArtifactStore:
    return open_store(config.store.uri, config.store.conn_id)


def _resolved_config_key(config: DomainConfig, run: RunContext) -> str:
    return f"{run_prefix(config.name, run.run_id, REFRESH_STEP)}/{RESOLVED_CONFIG}"


def recorded_run_config(config: DomainConfig, run: RunContext, store: ArtifactStore) -> DomainConfig:
    """The config the run's first step recorded, so every later task (on any worker, at any time) runs
    with the same settings even if the YAML is edited mid-run; `config` itself before that."""
    from synth_core.config import from_dict

    key = _resolved_config_key(config, run)
    if not store.exists(key):
        return config
    return from_dict(store.get_json(key), origin=store.uri_for(key))


def refresh_targets(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any]:
    """Snapshot the targets; as the run's first step, also record the run's resolved config and start the
    run's OpenLineage run."""
    from synth_core import lineage_events
    from synth_core.snapshot import read_lineage, refresh

    store.put_json(_resolved_config_key(config, run), config.to_dict())
    summary = refresh(config, run.run_id, store)
    lineage_events.run_started(config, run.run_id, read_lineage(config, run.run_id, store), summary["snapshot_uri"])
    return summary


def validate_targets(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any]:
    from synth_core.validation import validate_targets as validate

    return validate(config, run.run_id, store)


def training_fingerprint(config: DomainConfig) -> str:
    """What makes a trained prompt reusable: the generator, the soft-prompt settings and which rows train."""
    import hashlib
    import json

    split = [config.source.holdout_fraction, config.source.validation_fraction, config.source.split_seed]
    return hashlib.sha256(json.dumps([config.config_hash("generator", "soft_prompt"), split]).encode()).hexdigest()


def train_soft_prompt(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any]:
    """Train the domain's soft prompt, or reuse the current one when the snapshot and settings are unchanged;
    then settle the run's decoding (`choose_run_decoding`).

    Training runs in local scratch with resume on, so a retried task on the same worker continues
    from its last checkpoint; the finished checkpoint is copied to the store and becomes the
    domain's current prompt.
    """
    from synth_core.models import load_embedder, load_frozen_lm
    from synth_core.snapshot import read_target_split
    from synth_core.softprompt.training import train_soft_prompt as train

    targets = read_target_split(config, run.run_id, store)
    current_key = CURRENT_PROMPT_KEY.format(domain=config.name)
    fingerprint = training_fingerprint(config)
    if not run.force_retrain and store.exists(current_key):
        current = store.get_json(current_key)
        if current["snapshot_hash"] == targets.snapshot_hash and current["training_fingerprint"] == fingerprint:
            log.info("snapshot %s and training settings unchanged: reusing checkpoint %s",
                     targets.snapshot_hash[:12], current["checkpoint_prefix"])
            return {**current, "skipped": True,
                    "decoding": choose_run_decoding(config, run, store, current["checkpoint_prefix"],
                                                    current["checkpoint_hash"])}
    lm = load_frozen_lm(config.generator)
    result = train(config, lm, load_embedder(config.generator), targets, run.scratch(config, TRAIN_STEP),
                   resume=True)
    prefix = f"{run_prefix(config.name, run.run_id, TRAIN_STEP)}/checkpoint"
    for path in sorted(result.checkpoint_dir.iterdir()):
        store.put_file(f"{prefix}/{path.name}", path)
    current = {"checkpoint_prefix": prefix, "checkpoint_hash": result.checkpoint_hash, "run_id": run.run_id,
               "snapshot_hash": targets.snapshot_hash, "training_fingerprint": fingerprint,
               "variant": result.variant}
    store.put_json(current_key, current)  # written last: the prompt is current only once fully stored
    return {**current, "skipped": False, "steps": result.steps, "first_loss": result.first_loss,
            "final_loss": result.final_loss, "initial_heldout_nll": result.initial_heldout_nll,
            "heldout_nll": result.heldout_nll, "seconds": round(result.seconds, 1),
            "tokens_per_second": round(result.tokens_per_second, 1), "max_length": result.max_length,
            "decoding": choose_run_decoding(config, run, store, prefix, result.checkpoint_hash)}


def choose_run_decoding(config: DomainConfig, run: RunContext, store: ArtifactStore, checkpoint_prefix: str,
                        checkpoint_hash: str) -> dict[str, Any]:
    """The run's temperature and top-p, recorded under its train/ prefix for the generate tasks.

    Fixed values are recorded as they are. For `auto`, the choice made for this prompt, data and settings
    is reused when there is one; else the grid is sampled on the validation split (auto_decoding.py).
    Returns a short summary (it becomes an XCom).
    """
    from synth_core.generation.auto_decoding import choose_decoding, decoding_fingerprint, fixed_decoding
    from synth_core.snapshot import read_target_split

    record = fixed_decoding(config.generation)
    if config.generation.auto_decoding:
        targets = read_target_split(config, run.run_id, store)
        choice_key = DECODING_CHOICE_KEY.format(
            domain=config.name, fingerprint=decoding_fingerprint(config, checkpoint_hash, targets.snapshot_hash))
        if store.exists(choice_key):
            record = {**store.get_json(choice_key), "reused": True}
            log.info("decoding for this prompt and settings already chosen: temperature %s, top-p %s",
                     record["temperature"], record["top_p"])
        else:
            from synth_core.generation.factory import build_generator
            from synth_core.models import load_embedder

            checkpoint = _fetch_checkpoint(store, checkpoint_prefix, run.scratch(config, TRAIN_STEP) / "decoding")
            embedder = load_embedder(config.generator)
            generator, _ = build_generator(config, checkpoint, embedder=embedder, targets=targets)
            record = choose_decoding(generator, config, targets.validation, embedder.encode_cached).to_dict()
            store.put_json(choice_key, record)
    store.put_json(f"{run_prefix(config.name, run.run_id, TRAIN_STEP)}/{DECODING_FILE}", record)
    return {k: record[k] for k in ("temperature", "top_p", "auto")} | {"reused": record.get("reused", False)}


def run_decoding(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any] | None:
    """The decoding the run's train step recorded (None before it has)."""
    key = f"{run_prefix(config.name, run.run_id, TRAIN_STEP)}/{DECODING_FILE}"
    return store.get_json(key) if store.exists(key) else None


def _fetch_checkpoint(store: ArtifactStore, prefix: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for key in store.list(prefix):
        (into / key.rsplit("/", 1)[-1]).write_bytes(store.get_bytes(key))
    return into


def generate_shard(config: DomainConfig, run: RunContext, store: ArtifactStore, shard: int,
                   checkpoint_prefix: str, shards: int | None = None) -> dict[str, Any]:
    """Generate shard `shard` of `shards` from the stored checkpoint into the run's generate/ prefix.

    `shards` is the count the tasks were mapped over (the DAG's, fixed when it was parsed); it defaults
    to `generation.shards`. Each shard's rows come from its slice of `generation.candidate_rows` (num_samples x
    oversample; the gate selects num_samples of them), sampled with the decoding the train step recorded.
    """
    from synth_core.generation.auto_decoding import with_decoding
    from synth_core.generation.factory import build_generator
    from synth_core.generation.run import generate_to_parquet
    from synth_core.snapshot import read_target_split

    decoding = run_decoding(config, run, store)
    if decoding is None:
        train_uri = store.uri_for(run_prefix(config.name, run.run_id, TRAIN_STEP))
        raise FileNotFoundError(f"no {DECODING_FILE} under {train_uri}: the train step records the run's decoding "
                                "before anything is generated")
    config = with_decoding(config, decoding)
    settings = config.generation
    shards = shards or settings.shards
    scratch = run.scratch(config, f"{GENERATE_STEP}-{shard}")
    checkpoint = _fetch_checkpoint(store, checkpoint_prefix, scratch / "checkpoint")
    generator, lm = build_generator(config, checkpoint, targets=read_target_split(config, run.run_id, store))
    local = scratch / "part.parquet"
    result = generate_to_parquet(generator, local, num_samples=settings.candidate_rows, batch_size=settings.batch_size,
                                 seed=settings.seed, shard=shard, shards=shards,
                                 generator_name=lm.identity.name)
    key = f"{run_prefix(config.name, run.run_id, GENERATE_STEP)}/part-{shard:05d}-of-{shards:05d}.parquet"
    store.put_file(key, local)
    return {"key": key, "rows": result.rows, "new_tokens": result.new_tokens,
            "tokens_per_second": round(result.tokens_per_second, 1), "finished_fraction": result.finished_fraction}


def read_generated_batch(config: DomainConfig, run: RunContext, store: ArtifactStore):
    """All generated shards of the run, in sample order."""
    import pandas as pd

    keys = sorted(k for k in store.list(run_prefix(config.name, run.run_id, GENERATE_STEP)) if k.endswith(".parquet"))
    if not keys:
        raise FileNotFoundError(f"no generated shards under "
                                f"{store.uri_for(run_prefix(config.name, run.run_id, GENERATE_STEP))}")
    frame = pd.concat([pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in keys], ignore_index=True)
    return frame.sort_values("sample_index", kind="stable").reset_index(drop=True)


def filter_and_gate(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any]:
    """Filter the generated batch, score it, write the gate report and the kept rows; return the decision."""
    from synth_core.models import load_embedder
    from synth_core.quality.gate import batch_provenance, finished_flags, run_gate
    from synth_core.snapshot import read_lineage, read_target_split

    frame = read_generated_batch(config, run, store)
    targets = read_target_split(config, run.run_id, store)
    embedder = load_embedder(config.generator)
    identities = {**batch_provenance(frame), "run_id": run.run_id,
                  "target_snapshot_hash": read_lineage(config, run.run_id, store)["snapshot_hash"],
                  "embedder": embedder.identity.to_dict()}
    out_dir = run.scratch(config, GATE_STEP)
    report = run_gate(config, frame["text"].tolist(), targets.train, targets.heldout, embed=embedder.encode_cached,
                      identities=identities, out_dir=out_dir, finished=finished_flags(frame),
                      decoding=run_decoding(config, run, store))
    prefix = run_prefix(config.name, run.run_id, GATE_STEP)
    kept = frame[frame["text"].isin(set(report.kept_texts))].drop_duplicates("text")
    buffer = io.BytesIO()
    kept.to_parquet(buffer, index=False)
    store.put_bytes(f"{prefix}/{APPROVED_BATCH_DIR}/part-00000.parquet", buffer.getvalue())
    # the JSON last: it is what later steps read
    for name in (GATE_DROPPED_ROWS, GATE_REPORT_HTML, GATE_REPORT_JSON):
        if (out_dir / name).exists():
            store.put_file(f"{prefix}/{name}", out_dir / name)
    return {**report.summary(), "report_uri": store.uri_for(f"{prefix}/{GATE_REPORT_HTML}"),
            "gate_page": GATE_PAGES_URL + gate_page_run_path(config.name, run.run_id)}


def validate_synthetic_batch(config: DomainConfig, run: RunContext, store: ArtifactStore) -> dict[str, Any]:
    """Great Expectations on the rows the gate kept, before anything is published.

    A rejected batch is an outcome, not an error: the result is written, and returned with
    `success: False` and a one-line `message`, so the DAG routes the batch to quarantine.
    """
    from synth_core.validation import ValidationFailed, validate_synthetic

    try:
        return validate_synthetic(config, run.run_id, store)
    except ValidationFailed as exc:
        return {"batch": "synthetic", "success": False, "failed": len(exc.failures), "result_uri": exc.result_uri,
                "message": str(exc)}


def request_review(config: DomainConfig, run: RunContext, store: ArtifactStore, timeout_s: float) -> dict[str, Any]:
    """Record that the batch now waits for a person, and until when (after that the review rejects it):
    the gate page shows the deadline while Airflow's review task holds the request itself."""
    now = datetime.now(UTC)
    request = {"requested_at": now.isoformat(timespec="seconds"),
               "until": (now + timedelta(seconds=timeout_s)).isoformat(timespec="seconds")}
    store.put_json(review_request_key(config.name, run.run_id), request)
    return request


def publish_batch(config: DomainConfig, run: RunContext, store: ArtifactStore,
                  approved_by: str | None = None, review_comment: str | None = None) -> dict[str, Any]:
    from synth_core.publish import publish

    return publish(config, run.run_id, store, run.ds, approved_by=approved_by, review_comment=review_comment)


def quarantine_batch(config: DomainConfig, run: RunContext, store: ArtifactStore, reason: str = "") -> dict[str, Any]:
    from synth_core.publish import quarantine

    return quarantine(config, run.run_id, store, run.ds, reason=reason)


def check_feasible(config: DomainConfig) -> None:
    """Refuse, before any work, a run whose batch could never be published: fewer rows requested than
    the synthetic validation (or the gate) needs. Raises ConfigError naming both settings."""
    from synth_core.config import ConfigError

    requested = config.generation.num_samples
    needed, setting, why = config.num_samples_floor()
    if requested < needed:
        raise ConfigError(f"{config.name}: generation.num_samples={requested} (YAML or the num_samples "
                          f"param) is below {setting}={needed}: {why}; ask for at least {needed} rows")


def run_all(config: DomainConfig, run: RunContext, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Every step in order on this machine (the CLI's `synth run`); a `review` decision is quarantined
    here, since only the Airflow DAG has a human in the loop."""
    check_feasible(config)
    store = store or domain_store(config)
    summary: dict[str, Any] = {"refresh": refresh_targets(config, run, store),
                               "validate_targets": validate_targets(config, run, store)}
    summary["train"] = train_soft_prompt(config, run, store)
    summary["generate"] = [generate_shard(config, run, store, shard, summary["train"]["checkpoint_prefix"])
                           for shard in range(config.generation.shards)]
    summary["gate"] = filter_and_gate(config, run, store)
    summary["validate_synthetic"] = validation = validate_synthetic_batch(config, run, store)
    if next_step(summary["gate"], validation) == PUBLISH:
        summary["publish"] = publish_batch(config, run, store)
    else:
        summary["quarantine"] = quarantine_batch(config, run, store, reason=quarantine_reason(
            summary["gate"], validation, review="no reviewer outside Airflow"))
    return summary


def key_figures(step_name: str, result: Mapping[str, Any]) -> str:
    """One line a person can read at a glance: numbers first (4 significant digits), then flags and short
    words, hashes last and cut to 12 characters; lists, dicts and long text are left to the XCom."""
    numbers, words, hashes = [], [], []
    for key, value in result.items():
        if isinstance(value, bool) or (isinstance(value, str) and len(value) < 60 and not HEX.fullmatch(value)):
            words.append(f"{key}={value}")
        elif isinstance(value, int | float):
            numbers.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        elif isinstance(value, str) and HEX.fullmatch(value):
            hashes.append(f"{key}={value[:12]}")
    return f"{step_name}: " + ", ".join(numbers + words + hashes)
