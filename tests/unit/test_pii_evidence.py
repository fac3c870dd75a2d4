"""No planted PII survives into anything a run keeps: gate report, dropped rows, kept batch, validation
results, quarantine and logs (issue: publishing you can bet on). Only the raw generator output, the gate's
input, holds it."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from synth_core.pipeline import (
    RunContext,
    filter_and_gate,
    quarantine_batch,
    refresh_targets,
    validate_synthetic_batch,
)
from synth_core.store import LocalStore
from tests.conftest import TARGET_ROWS, domain_config

pytestmark = pytest.mark.unit

CARD, EMAIL, PHONE = "4111 1111 1111 1111", "jane.doe@example.com", "+44 20 7946 0958"


def _planted_batch() -> list[tuple[str, bool]]:
    """(text, finished): real-looking rows, and rows each dropped for another reason, every one carrying PII."""
    rows = [(f"Question: What is {i} plus {i + 2}?\nAnswer: It is {2 * i + 2}.", True) for i in range(60)]
    return rows + [
        (f"Question: What is 1 plus 1? Pay with {CARD}." + " and then more words" * 40, True),  # too long
        (f"Question: mail {EMAIL} " * 12, True),  # repetitive
        (f"Question: What is 3 plus 3? Call {PHONE}\nAnswer: It is 6.", True),  # PII only
        (f"Question: What is 4 plus 4? Write to {EMAIL}", False),  # cut at the token cap
        (f"Question: What is {TARGET_ROWS[0]['question'][8:]} {CARD}\nAnswer: It is 1.", True),
    ]


def _texts_in(path: Path) -> str:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return "\n".join(str(v) for column in frame.columns for v in frame[column].tolist())
    return path.read_bytes().decode("utf-8", errors="replace")


def test_no_planted_pii_in_any_artifact_report_quarantine_or_log(tmp_path: Path, caplog) -> None:
    config = domain_config(tmp_path, gate={"min_rows": 10})
    store = LocalStore(tmp_path / "artifacts")
    run = RunContext(run_id="run1", ds="2025-01-31", work_dir=tmp_path / "work")
    refresh_targets(config, run, store)
    rows = _planted_batch()
    frame = pd.DataFrame({"text": [t for t, _ in rows], "finished": [f for _, f in rows],
                          "sample_index": range(len(rows)), "checkpoint_hash": "ckpt", "generator": "tiny-random",
                          "context_index": 0, "new_tokens": 10})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes("arith/run1/generate/part-00000-of-00001.parquet", buffer.getvalue())

    with caplog.at_level(logging.DEBUG):
        gate = filter_and_gate(config, run, store)
        validate_synthetic_batch(config, run, store)
        quarantine_batch(config, run, store, reason="test")
    dropped = pd.read_parquet(io.BytesIO(store.get_bytes("arith/run1/gate/gate_dropped_rows.parquet")))
    assert len(dropped) >= 5, gate  # every planted row was dropped, and kept as (redacted) evidence
    assert "[redacted" in " ".join(dropped["text"])

    kept_files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file() and "/generate/" not in str(p)]
    kept_files += [p for p in (tmp_path / "published").rglob("*") if p.is_file()]
    kept_files += [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert any("_quarantine" in str(p) for p in kept_files)
    for path in kept_files:
        text = _texts_in(path)
        for planted in (CARD, EMAIL, PHONE):
            assert planted not in text, f"{planted!r} in {path}"
    logged = "\n".join(r.getMessage() for r in caplog.records) + json.dumps(gate, default=str)
    for planted in (CARD, EMAIL, PHONE):
        assert planted not in logged
