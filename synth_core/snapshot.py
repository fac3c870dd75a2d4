"""`refresh`: an immutable target snapshot (Parquet) with lineage and a seeded train/held-out split.

The snapshot lives under the run's `refresh/` prefix; `lineage.json` is written last and is the commit
marker, so a snapshot without lineage was never finished and one with lineage is never rewritten (a
retried refresh of the same run returns the snapshot it already took). The content hash covers the
normalised rows only: equal data gives an equal hash, which lets training skip when nothing changed.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from synth_core.config import DomainConfig
from synth_core.layout import LINEAGE_FILE, REFRESH_STEP, SNAPSHOT_FILE, run_prefix
from synth_core.sources import (
    TargetSplit,
    content_hash,
    describe_source,
    normalise_targets,
    read_source_rows,
    split_rows,
    to_target_split,
)
from synth_core.store import ArtifactStore


def _schema(frame: pd.DataFrame) -> dict[str, str]:
    return {str(col): str(dtype) for col, dtype in frame.dtypes.items()}


def _summary(lineage: dict[str, Any], store: ArtifactStore, prefix: str, reused: bool) -> dict[str, Any]:
    return {"snapshot_hash": lineage["snapshot_hash"], "rows": lineage["rows"],
            "train_rows": lineage["split"]["train_rows"], "heldout_rows": lineage["split"]["heldout_rows"],
            "validation_rows": lineage["split"].get("validation_rows", 0),
            "snapshot_uri": store.uri_for(f"{prefix}/{SNAPSHOT_FILE}"),
            "lineage_uri": store.uri_for(f"{prefix}/{LINEAGE_FILE}"), "reused": reused}


def refresh(config: DomainConfig, run_id: str, store: ArtifactStore) -> dict[str, Any]:
    """Read the governed source once per run and record it as the run's target snapshot."""
    prefix = run_prefix(config.name, run_id, REFRESH_STEP)
    if store.exists(f"{prefix}/{LINEAGE_FILE}"):
        return _summary(store.get_json(f"{prefix}/{LINEAGE_FILE}"), store, prefix, reused=True)
    src = config.source
    source_rows = read_source_rows(config)
    targets = normalise_targets(config, source_rows)
    snapshot_hash = content_hash(targets)
    targets["split"] = split_rows(config, len(targets))
    buffer = io.BytesIO()
    targets.to_parquet(buffer, index=False)
    store.put_bytes(f"{prefix}/{SNAPSHOT_FILE}", buffer.getvalue())
    lineage = {
        "domain": config.name, "run_id": run_id, "source": describe_source(config),
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_rows": len(source_rows), "source_schema": _schema(source_rows),
        "rows": len(targets), "schema": _schema(targets), "snapshot_hash": snapshot_hash,
        "snapshot_file": SNAPSHOT_FILE, "snapshot_sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "text_template": src.text_template, "metadata_columns": src.metadata_columns,
        "split": {"seed": src.split_seed, "holdout_fraction": src.holdout_fraction,
                  "validation_fraction": src.validation_fraction,
                  **{f"{name}_rows": targets["split"].eq(name).sum().item()
                     for name in ("train", "heldout", "validation")}},
        "source_config_hash": config.config_hash("source"),
    }
    store.put_json(f"{prefix}/{LINEAGE_FILE}", lineage)
    return _summary(lineage, store, prefix, reused=False)


def snapshot_uri(config: DomainConfig, run_id: str, store: ArtifactStore) -> str:
    return store.uri_for(f"{run_prefix(config.name, run_id, REFRESH_STEP)}/{SNAPSHOT_FILE}")


def read_lineage(config: DomainConfig, run_id: str, store: ArtifactStore) -> dict[str, Any]:
    return store.get_json(f"{run_prefix(config.name, run_id, REFRESH_STEP)}/{LINEAGE_FILE}")


def read_snapshot(config: DomainConfig, run_id: str, store: ArtifactStore) -> pd.DataFrame:
    """The run's snapshot: `text`, the metadata columns and `split` (train or heldout)."""
    prefix = run_prefix(config.name, run_id, REFRESH_STEP)
    if not store.exists(f"{prefix}/{LINEAGE_FILE}"):
        raise FileNotFoundError(f"no committed target snapshot at {store.uri_for(prefix)}: run `synth refresh` first")
    return pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{SNAPSHOT_FILE}")))


def read_target_split(config: DomainConfig, run_id: str, store: ArtifactStore) -> TargetSplit:
    """Train and held-out texts of the run's snapshot, for training and the quality gate."""
    return to_target_split(read_snapshot(config, run_id, store), read_lineage(config, run_id, store)["snapshot_hash"])
