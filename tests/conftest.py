"""Shared fixtures for the data-in / data-out steps: a small governed domain on disk, a local artifact
store, and a run whose `generate/` and `gate/` steps are already done (as the other steps leave them)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from synth_core.config import DomainConfig, from_dict
from synth_core.layout import run_prefix
from synth_core.snapshot import refresh
from synth_core.store import ArtifactStore, LocalStore

TARGET_ROWS = [{"question": f"What is {i} plus {i + 1}?", "answer": f"It is {2 * i + 1}.",
                "topic": "addition" if i % 2 else "sums", "row_id": i} for i in range(40)]


def domain_config(tmp_path: Path, source: dict | None = None, **sections: dict) -> DomainConfig:
    """A small valid domain whose source is `targets.jsonl` in tmp_path (written if absent)."""
    path = tmp_path / "targets.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in TARGET_ROWS))
    data = {
        "name": "arith", "description": "Tiny arithmetic questions.", "tags": ["test"],
        "source": {"kind": "file", "uri": str(path), "text_template": "Question: {question}\nAnswer: {answer}",
                   "metadata_columns": ["topic"], "holdout_fraction": 0.25, "split_seed": 7, **(source or {})},
        "validation": {"min_rows": 10, "max_rows": 1000, "text_length": [10, 200],
                       "forbid_patterns": ["email", "phone", "card_number"]},
        "publish": {"uri": (tmp_path / "published").as_uri(), "license": "CC0 (test data)"},
        "store": {"uri": (tmp_path / "artifacts").as_uri()},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return from_dict(data, origin="test domain")


@pytest.fixture
def target_domain(tmp_path: Path) -> DomainConfig:
    return domain_config(tmp_path)


@pytest.fixture
def artifact_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


def synthetic_part(start: int, rows: int, checkpoint: str = "ckpt-abc") -> bytes:
    frame = pd.DataFrame({"text": [f"Question: What is {i} times two?\nAnswer: It is {2 * i}."
                                   for i in range(start, start + rows)],
                          "checkpoint_hash": checkpoint, "generator": "tiny-random", "context_index": range(rows)})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_generated_run(config: DomainConfig, run_id: str, store: ArtifactStore, decision: str = "pass",
                        parts: int = 2, rows_per_part: int = 15) -> None:
    """Refresh, then leave a synthetic batch and a gate report where `generate` and `gate` put them."""
    refresh(config, run_id, store)
    for i in range(parts):
        store.put_bytes(f"{run_prefix(config.name, run_id, 'gate')}/batch/shard-{i}-of-{parts}.parquet",
                        synthetic_part(i * rows_per_part, rows_per_part))
    gate = run_prefix(config.name, run_id, "gate")
    store.put_json(f"{gate}/gate_report.json", {
        "decision": decision, "reasons": ["all criteria met"] if decision == "pass" else [f"gate said {decision}"],
        "counts": {"input": parts * rows_per_part, "kept": parts * rows_per_part, "dropped": 0},
        "rates": {"duplicate_rate": 0.0, "leakage_rate": 0.0},
        "mauve": {"synthetic": {"mean": 0.81}, "reference": {"mean": 0.97}}, "identities": {"domain": config.name}})
    store.put_bytes(f"{gate}/gate_report.html", b"<h1>gate report</h1>")


@pytest.fixture
def make_generated_run() -> Callable[..., None]:
    return write_generated_run
