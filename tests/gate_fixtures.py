"""Gated runs in a real artifact store, made by the real steps, for the gate-review page's tests.

A small GSM8K domain (80 target rows) in a folder of domain YAMLs, with a file:// store and
publish destination. `make_gate_runs` runs refresh, target validation, the real gate (MAUVE on cheap
hashed character-trigram features instead of a model), synthetic validation and publish or
quarantine, so the history is read back from exactly what the pipeline writes:

- `scored`: real GSM8K test rows gated against train rows, published (or quarantined) by decision;
- `reviewed`: the same rows with `gate.mauve_floor` just above their score, so the gate asks for a
  review; published with `approved_by="alice"`;
- `leaky`: verbatim copies of target rows: fails on leakage, unscored, quarantined.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synth_core.config import DomainConfig, load_domain
from synth_core.layout import run_prefix
from synth_core.quality import run_gate
from synth_core.store import ArtifactStore, open_store

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "gatereview"
TEMPLATE = "Question: {question}\nAnswer: {answer}"


def hashed_features(texts: list[str], dims: int = 64) -> np.ndarray:
    """Bag of hashed character trigrams, L2-normalised: deterministic, instant, and different texts differ."""
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for row, text in enumerate(texts):
        for i in range(max(len(text) - 2, 1)):
            out[row, int.from_bytes(hashlib.blake2b(text[i:i + 3].encode(), digest_size=4).digest()) % dims] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def write_domain_yaml(folder: Path, name: str = DOMAIN, rows: int = 80) -> Path:
    """`<folder>/<name>.yaml` over `rows` GSM8K train rows, store and publish under `<folder>/data-<name>`."""
    data = folder / f"data-{name}"
    data.mkdir(parents=True, exist_ok=True)
    lines = (REPO / "domains" / "data" / "gsm8k" / "train.jsonl").read_text().splitlines()[:rows]
    (data / "targets.jsonl").write_text("\n".join(lines) + "\n")
    path = folder / f"{name}.yaml"
    path.write_text(f"""name: {name}
description: GSM8K slice for the gate review tests.
source: {{kind: file, uri: {data / 'targets.jsonl'}, text_template: {json.dumps(TEMPLATE)}, holdout_fraction: 0.5,
  validation_fraction: 0}}
generation: {{support_quantile: null}}
validation: {{min_rows: 10, text_length: [20, 2000], forbid_patterns: []}}
generator: {{model: "embedded:tiny-random"}}
gate: {{min_rows: 20, mauve_seeds: [0], pii_patterns: []}}
store: {{uri: "{(data / 'artifacts').as_uri()}"}}
publish: {{uri: "{(data / 'published').as_uri()}", license: "MIT (GSM8K)"}}
""")
    return path


def synthetic_rows(rows: int = 40) -> list[str]:
    frame = pd.read_json(REPO / "domains" / "data" / "gsm8k" / "test.jsonl", lines=True).head(rows)
    return [TEMPLATE.format(**r) for r in frame.to_dict("records")]


@dataclass
class GatedRun:
    run_id: str
    ds: str
    report: dict
    outcome: dict  # what publish() or quarantine() returned


def gate_run(config: DomainConfig, store: ArtifactStore, run_id: str, ds: str, texts: list[str],
             approved_by: str | None = None) -> GatedRun:
    """One run through the real steps, from refresh to publish/quarantine."""
    from synth_core.layout import APPROVED_BATCH_DIR
    from synth_core.pipeline import RunContext, request_review, validate_synthetic_batch
    from synth_core.publish import publish, quarantine
    from synth_core.routing import PUBLISH, REVIEW, next_step, quarantine_reason
    from synth_core.snapshot import read_target_split, refresh
    from synth_core.validation import validate_targets

    refresh(config, run_id, store)
    validate_targets(config, run_id, store)
    targets = read_target_split(config, run_id, store)
    out_dir = Path(tempfile.mkdtemp(prefix="gate-"))
    report = run_gate(config, texts, targets.train, targets.heldout, embed=hashed_features,
                      identities={"run_id": run_id, "checkpoint_hash": "ckpt-test", "generator": "tiny-random"},
                      out_dir=out_dir)
    prefix = run_prefix(config.name, run_id, "gate")
    buffer = io.BytesIO()
    pd.DataFrame({"text": report.kept_texts, "checkpoint_hash": "ckpt-test"}).to_parquet(buffer, index=False)
    store.put_bytes(f"{prefix}/{APPROVED_BATCH_DIR}/part-00000.parquet", buffer.getvalue())
    for name in ("gate_report.html", "gate_report.json"):
        store.put_file(f"{prefix}/{name}", out_dir / name)
    validation = validate_synthetic_batch(config, RunContext(run_id, ds), store)
    step, gate = next_step(report.summary(), validation), report.summary()
    if step == REVIEW:
        request_review(config, RunContext(run_id, ds), store, timeout_s=7 * 24 * 3600)
    if step == PUBLISH or (step == REVIEW and approved_by):
        outcome = publish(config, run_id, store, ds, approved_by=approved_by)
    else:
        outcome = quarantine(config, run_id, store, ds, reason=quarantine_reason(gate, validation))
    return GatedRun(run_id, ds, json.loads((out_dir / "gate_report.json").read_text()), outcome)


def make_gate_runs(domain_yaml: Path) -> dict[str, GatedRun]:
    """The three runs described in the module docstring, oldest first."""
    config = load_domain(domain_yaml)
    store = open_store(config.store.uri)
    texts = synthetic_rows()
    runs = {"scored": gate_run(config, store, "scheduled__2026-01-05T00:00:00+00:00", "2026-01-05", texts)}
    score = runs["scored"].report["mauve"]["synthetic"]["mean"]
    strict = config.with_overrides({"gate.mauve_floor": min(1.0, score + config.gate.review_band / 2)})
    runs["reviewed"] = gate_run(strict, store, "scheduled__2026-01-12T00:00:00+00:00", "2026-01-12", texts,
                                approved_by="alice")
    from synth_core.snapshot import read_target_split

    copies = read_target_split(config, runs["scored"].run_id, store).train[:30]
    runs["leaky"] = gate_run(config, store, "manual__2026-01-13T09:30:00+00:00", "2026-01-13", copies)
    return runs
