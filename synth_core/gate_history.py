"""The history of a domain's quality gates, read back from the artifact store for review.

For each domain (one YAML under `SYNTH_DOMAINS_DIR`), each run that has a gate report
(`<domain>/<run_id>/gate/gate_report.json` in the domain's store) becomes one `GateRun`: its decision,
MAUVE against the reference and the bar it had to clear, leakage and duplicate rates, rows kept and
dropped, the Great Expectations results of its validation steps, and where (and by whom) the batch
was published or quarantined. Nothing here writes; a domain whose YAML or store is broken is
reported as such instead of failing the whole history.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synth_core.config import DomainConfig
from synth_core.domains import discover_domains, domains_dir
from synth_core.layout import (
    GATE_REPORT_JSON,
    GATE_STEP,
    VALIDATION_JSON,
    VALIDATION_STEPS,
    dag_id_for,
    gate_report_html_key,
    gate_report_key,
    latest_key,
    manifests_by_run,
    review_request_key,
    run_prefix,
)
from synth_core.store import ArtifactStore, StoreError, open_store

log = logging.getLogger(__name__)

FAILED_VALIDATION = "failed validation"



@dataclass(frozen=True)
class BrokenDomain:
    """A domain YAML that did not load: shown on the page, never fatal."""

    path: str
    error: str


def load_domains(folder: Path | None = None) -> tuple[list[DomainConfig], list[BrokenDomain]]:
    """The domains `discover_domains` finds (sorted by name; each has a DAG), and the files that failed to load."""
    folder = folder or domains_dir()
    if not folder.is_dir():
        return [], [BrokenDomain(str(folder), "domains folder not found (set SYNTH_DOMAINS_DIR)")]
    found = discover_domains(folder)
    configs = sorted((d.config for d in found if d.config), key=lambda c: c.name)
    return configs, [BrokenDomain(str(d.path), d.error) for d in found if d.error]


@dataclass
class Publication:
    """Where a run's batch went: `published` (with who approved it after review) or `quarantined`."""

    status: str
    uri: str
    manifest_key: str
    ds: str | None = None
    rows: int | None = None
    approved_by: str | None = None
    review_comment: str | None = None
    reason: str | None = None
    is_latest: bool = False


@dataclass
class GateRun:
    """One row of a domain's gate history."""

    domain: str
    run_id: str
    dag_id: str
    created_at: str | None = None
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)
    mauve: float | None = None
    mauve_reference: float | None = None
    mauve_threshold: float | None = None
    mauve_interval: list[float] | None = None  # [low, high] over rows, at the report's confidence
    mauve_reference_interval: list[float] | None = None
    mauve_explanation: str | None = None  # the MAUVE criterion's sentence: the numbers and why
    leakage_rate: float | None = None
    duplicate_rate: float | None = None
    precision: float | None = None  # k-NN precision (realism) and recall (coverage) against held-out rows
    recall: float | None = None
    min_precision: float | None = None  # the gate's thresholds for them (None: reported, not judged)
    min_recall: float | None = None
    rows_input: int | None = None
    rows_kept: int | None = None
    rows_dropped: int | None = None
    validation: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    publication: Publication | None = None
    review_until: str | None = None  # sent to human review: the deadline (ISO time) after which it is rejected
    error: str | None = None  # the report could not be read

    @property
    def verdict(self) -> str | None:
        """What happened to the batch: the gate's decision, unless the gate let it through (pass or
        review) and the synthetic validation that runs before publishing rejected it."""
        synthetic = self.validation.get("synthetic")
        rejected = synthetic is not None and not synthetic["success"] and self.decision in ("pass", "review")
        return FAILED_VALIDATION if rejected else self.decision

    @property
    def end_state(self) -> str:
        """Where the batch ended: published or quarantined (from the destination's manifests), awaiting
        review (a review decision with neither yet), or not published (the run stopped or is still going)."""
        if self.publication is not None:
            return self.publication.status
        return "awaiting review" if self.verdict == "review" else "not published"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class DomainHistory:
    domain: str
    dag_id: str
    store_uri: str
    runs: list[GateRun]
    error: str | None = None  # the store could not be listed

    @property
    def last_published(self) -> str | None:
        """When the newest published run was gated (runs are newest first), or None."""
        return next((r.created_at for r in self.runs if r.end_state == "published"), None)

    @property
    def unpublished_streak(self) -> int:
        """Finished runs since the last publish that did not publish (quarantined or stopped): a domain
        failing night after night shows it here before anyone reads the rows."""
        streak = 0
        for run in self.runs:
            if run.end_state == "published":
                break
            streak += run.end_state != "awaiting review"
        return streak

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last_published": self.last_published, "unpublished_streak": self.unpublished_streak}


def gated_run_ids(store: ArtifactStore, domain: str) -> list[str]:
    """Run ids under `<domain>/` that have a gate report."""
    runs = []
    for key in store.list(domain):
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == domain and parts[2:] == [GATE_STEP, GATE_REPORT_JSON]:
            runs.append(parts[1])
    return runs


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mauve_criterion(report: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in report.get("criteria") or [] if c.get("metric") == "mauve"), {})


def _interval(bootstrap: dict[str, Any], key: str) -> list[float] | None:
    values = bootstrap.get(key)
    return [float(v) for v in values] if isinstance(values, list) and len(values) == 2 else None


def summarise_report(domain: str, run_id: str, report: dict[str, Any]) -> GateRun:
    """The history row for one gate report dict (as `GateReport.to_dict()` writes it)."""
    mauve = report.get("mauve") or {}
    counts = report.get("counts") or {}
    rates = report.get("rates") or {}
    synthetic_shape = (report.get("shape") or {}).get("synthetic") or {}
    bootstrap, gate = mauve.get("bootstrap") or {}, (report.get("settings") or {}).get("gate") or {}
    mauve_criterion = _mauve_criterion(report)
    return GateRun(
        domain=domain, run_id=run_id, dag_id=dag_id_for(domain), created_at=report.get("created_at"),
        decision=report.get("decision"), reasons=list(report.get("reasons") or []),
        mauve=_number((mauve.get("synthetic") or {}).get("mean")),
        mauve_reference=_number((mauve.get("reference") or {}).get("mean")),
        mauve_threshold=_number(mauve_criterion.get("threshold")),
        mauve_interval=_interval(bootstrap, "synthetic_interval"),
        mauve_reference_interval=_interval(bootstrap, "reference_interval"),
        mauve_explanation=mauve_criterion.get("reason"),
        leakage_rate=_number(rates.get("leakage_rate")), duplicate_rate=_number(rates.get("duplicate_rate")),
        precision=_number(synthetic_shape.get("precision")), recall=_number(synthetic_shape.get("recall")),
        min_precision=_number(gate.get("min_precision")), min_recall=_number(gate.get("min_recall")),
        rows_input=counts.get("input"), rows_kept=counts.get("kept"), rows_dropped=counts.get("dropped"),
    )


def review_deadline(store: ArtifactStore, domain: str, run_id: str) -> str | None:
    """Until when the run's batch waits for a reviewer (None: it was never sent to review)."""
    try:
        return store.get_json(review_request_key(domain, run_id)).get("until")
    except FileNotFoundError:
        return None


def gate_run_from_store(store: ArtifactStore, domain: str, run_id: str, report: dict[str, Any]) -> GateRun:
    """The history row for a run whose gate report was read: the report's figures, its validation results
    and, for a batch the gate sent to review, the review's deadline."""
    run = summarise_report(domain, run_id, report)
    run.validation = validation_summary(store, domain, run_id)
    if run.decision == "review":
        run.review_until = review_deadline(store, domain, run_id)
    return run


def validation_summary(store: ArtifactStore, domain: str, run_id: str) -> dict[str, dict[str, Any] | None]:
    """Per validated batch (targets, synthetic): GX success and expectation counts, or None if not run."""
    summary: dict[str, dict[str, Any] | None] = {}
    for batch, step in VALIDATION_STEPS.items():
        key = f"{run_prefix(domain, run_id, step)}/{VALIDATION_JSON}"
        try:
            result = store.get_json(key)
        except FileNotFoundError:
            summary[batch] = None
            continue
        stats = result.get("statistics") or {}
        summary[batch] = {"success": bool(result.get("success")),
                          "evaluated": stats.get("evaluated_expectations"),
                          "successful": stats.get("successful_expectations"),
                          "uri": store.uri_for(key)}
    return summary


def publications(config: DomainConfig) -> dict[str, Publication]:
    """run id -> where its batch was published or quarantined (published wins if both)."""
    found: dict[str, Publication] = {}
    for status, uri in (("quarantined", config.publish.quarantine), ("published", config.publish.uri)):
        dest = open_store(uri, config.publish.conn_id)
        latest_run = None
        if status == "published" and dest.exists(latest_key(config.name)):
            latest_run = dest.get_json(latest_key(config.name)).get("run_id")
        for run_id, key in manifests_by_run(dest.list(f"domain={config.name}")).items():
            manifest = dest.get_json(key)
            found[run_id] = Publication(
                status=status, uri=dest.uri_for(key.rsplit("/", 1)[0]), manifest_key=key, ds=manifest.get("ds"),
                rows=manifest.get("rows"), approved_by=manifest.get("approved_by"),
                review_comment=manifest.get("review_comment"), reason=manifest.get("reason"),
                is_latest=run_id == latest_run)
    return found


def domain_history(config: DomainConfig, limit: int = 50, store: ArtifactStore | None = None) -> DomainHistory:
    """The domain's gated runs, newest first (at most `limit`); store errors become `error`, not exceptions."""
    history = DomainHistory(config.name, dag_id_for(config.name), config.store.uri, [])
    try:
        store = store or open_store(config.store.uri, config.store.conn_id)
        run_ids = gated_run_ids(store, config.name)
    except StoreError as exc:
        history.error = f"artifact store {config.store.uri} could not be listed: {exc}"
        return history
    runs = [read_gate_run(store, config.name, run_id) for run_id in run_ids]
    runs.sort(key=lambda r: (r.created_at or "", r.run_id), reverse=True)
    history.runs = runs[:limit]
    try:
        published = publications(config)
    except (StoreError, OSError, ValueError) as exc:
        history.error = f"publications under {config.publish.uri} could not be read: {exc}"
        published = {}
    for run in history.runs:
        run.publication = published.get(run.run_id)
    return history


def read_gate_run(store: ArtifactStore, domain: str, run_id: str) -> GateRun:
    """One run's history row; an unreadable report gives a row with `error` set."""
    try:
        run = gate_run_from_store(store, domain, run_id, store.get_json(gate_report_key(domain, run_id)))
    except (StoreError, FileNotFoundError, ValueError, AttributeError) as exc:
        log.warning("gate report of %s run %s unreadable: %s", domain, run_id, exc)
        return GateRun(domain, run_id, dag_id_for(domain), error=f"{type(exc).__name__}: {exc}")
    return run


@dataclass
class RunDetail:
    """Everything the detail view shows: the history row, the full report dict and the manifest."""

    run: GateRun
    report: dict[str, Any]
    manifest: dict[str, Any] | None
    report_html_available: bool
    error: str | None = None  # the publications could not be read


def run_detail(config: DomainConfig, run_id: str, store: ArtifactStore | None = None) -> RunDetail:
    """Raises FileNotFoundError when the run has no gate report (ValueError for an invalid run id)."""
    store = store or open_store(config.store.uri, config.store.conn_id)
    report = store.get_json(gate_report_key(config.name, run_id))
    run = gate_run_from_store(store, config.name, run_id, report)
    detail = RunDetail(run, report, None, store.exists(gate_report_html_key(config.name, run_id)))
    try:
        run.publication = publications(config).get(run_id)
        if run.publication:
            dest_uri = config.publish.uri if run.publication.status == "published" else config.publish.quarantine
            detail.manifest = open_store(dest_uri, config.publish.conn_id).get_json(run.publication.manifest_key)
    except (StoreError, OSError, ValueError) as exc:
        detail.error = f"publications under {config.publish.uri} could not be read: {exc}"
    return detail


def gate_report_html(config: DomainConfig, run_id: str, store: ArtifactStore | None = None) -> bytes:
    """The stored HTML gate report; raises FileNotFoundError when absent."""
    store = store or open_store(config.store.uri, config.store.conn_id)
    return store.get_bytes(gate_report_html_key(config.name, run_id))
