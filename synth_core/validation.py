"""Great Expectations checks on the target snapshot (before training) and the synthetic batch (before publishing).

The suite and how GX runs it live in `synth_core.expectations`. Here: which rows are validated, and
the record: the full result is written as JSON and HTML beside the run's artifacts first; then a
failure raises a short `ValidationFailed` that names each failed expectation and its observed value.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any

from synth_core.expectations import (
    Batch,
    expectation_specs,
    failed_expectations,
    render_html,
    run_suite,
    with_pii_flags,
)
from synth_core.layout import (
    APPROVED_BATCH_DIR,
    GATE_STEP,
    VALIDATION_HTML,
    VALIDATION_JSON,
    VALIDATION_STEPS,
    run_prefix,
)
from synth_core.store import ArtifactStore

if TYPE_CHECKING:
    import pandas as pd

    from synth_core.config import DomainConfig

class ValidationFailed(RuntimeError):
    """Deterministic: the data broke its expectations. Do not retry; fix the data or the config."""

    def __init__(self, message: str, failures: list[dict], result_uri: str):
        super().__init__(message)
        self.failures = failures
        self.result_uri = result_uri


def _validate_and_record(config: DomainConfig, run_id: str, store: ArtifactStore, batch: Batch,
                         frame: pd.DataFrame) -> dict[str, Any]:
    started = time.perf_counter()
    prefix = run_prefix(config.name, run_id, VALIDATION_STEPS[batch])
    flagged = with_pii_flags(frame, config.validation.forbid_patterns)
    result = run_suite(flagged, expectation_specs(config, batch), f"{config.name}_{batch}")
    failures = failed_expectations(result)
    result["meta"] = {"domain": config.name, "run_id": run_id, "batch": batch, "rows": len(frame),
                      "config_hash": config.config_hash("source", "validation")}
    result_uri = store.put_json(f"{prefix}/{VALIDATION_JSON}", result)
    report_uri = store.put_bytes(f"{prefix}/{VALIDATION_HTML}",
                                 render_html(f"{config.name} {batch} validation, run {run_id}", result).encode())
    if failures:
        listed = "; ".join(f"{f['expectation']}({f['column'] or f['check']}) observed {f['observed']}"
                           for f in failures)
        raise ValidationFailed(f"{config.name} {batch} validation failed {len(failures)} of "
                               f"{len(result['results'])} expectations: {listed}. Full result: {result_uri}",
                               failures, result_uri)
    return {"batch": batch, "success": True, "rows": len(frame), "evaluated": len(result["results"]),
            "result_uri": result_uri, "report_uri": report_uri,
            "seconds": round(time.perf_counter() - started, 2)}


def validate_targets(config: DomainConfig, run_id: str, store: ArtifactStore) -> dict[str, Any]:
    """Check the run's target snapshot; raises `ValidationFailed` (after writing the report) on failure,
    and `ConfigError` when a declared row check rejects the real targets themselves (a wrong pattern
    would otherwise silently drop every generated row)."""
    from synth_core.config import ConfigError
    from synth_core.quality.checks import RowChecks
    from synth_core.snapshot import read_snapshot

    snapshot = read_snapshot(config, run_id, store)
    summary = _validate_and_record(config, run_id, store, "targets", snapshot)
    checks = RowChecks(config.checks)
    if not checks:
        return summary
    texts = snapshot["text"].astype(str).tolist()
    results = checks.run(texts)
    problems = checks.target_problems(texts, results)
    if problems:
        raise ConfigError(f"{config.name}: the domain's checks reject its own real targets: " + " | ".join(problems))
    return {**summary, "check_pass_rates": results.pass_rates}


def synthetic_batch_keys(config: DomainConfig, run_id: str, store: ArtifactStore) -> list[str]:
    prefix = f"{run_prefix(config.name, run_id, GATE_STEP)}/{APPROVED_BATCH_DIR}"
    keys = [k for k in store.list(prefix) if k.endswith(".parquet")]
    if not keys:
        raise FileNotFoundError(f"no synthetic batch: no .parquet under "
                                f"{store.uri_for(prefix)}")
    return keys


def read_approved_batch(config: DomainConfig, run_id: str, store: ArtifactStore) -> pd.DataFrame:
    """The rows the gate kept (`gate/batch/`), the only rows validation and publishing read."""
    import pandas as pd

    return pd.concat([pd.read_parquet(io.BytesIO(store.get_bytes(k)))
                      for k in synthetic_batch_keys(config, run_id, store)], ignore_index=True)


def validate_synthetic(config: DomainConfig, run_id: str, store: ArtifactStore) -> dict[str, Any]:
    """Check the run's approved batch (the rows the gate kept, under `gate/batch/`) before publishing."""
    return _validate_and_record(config, run_id, store, "synthetic", read_approved_batch(config, run_id, store))
