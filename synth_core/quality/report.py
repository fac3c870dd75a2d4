"""The gate report: everything a reviewer or an auditor needs to see why a batch passed or not.

`to_dict()` is deterministic for the same inputs and seeds; the wall-clock time lives only in the
separate `created_at` key. `write_report` writes the JSON, the HTML page and every dropped row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from synth_core.layout import GATE_DROPPED_ROWS, GATE_REPORT_HTML, GATE_REPORT_JSON
from synth_core.quality.decision import PASS, Criterion
from synth_core.quality.filters import DROP_REASONS, DroppedRow, count_by_reason
from synth_core.quality.leakage import CalibratedLeakage
from synth_core.quality.mauve_score import CalibratedMauve
from synth_core.quality.shape import ShapeMetrics

SAMPLE_ROWS = 20  # kept rows, and dropped rows per reason, shown in the report


@dataclass
class GateReport:
    decision: str
    criteria: list[Criterion]
    input_rows: int
    kept_texts: list[str]
    dropped: list[DroppedRow]
    rates: dict[str, float]
    mauve: CalibratedMauve | None  # None when too few rows survived to score
    shape: dict[str, ShapeMetrics]  # "synthetic" and the real-train reference; empty when not scored
    length_histogram: dict
    settings: dict
    identities: dict
    leakage: CalibratedLeakage | None = None  # near-copy rates of the batch and of real held-out rows
    checks: dict | None = None  # each declared check's pass rate on the batch and on real held-out rows
    selection: dict | None = None  # rows requested, candidates, off support, selected (quality/selection.py)
    decoding: dict | None = None  # the run's temperature and top-p, and for auto every setting tried
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def reasons(self) -> list[str]:
        """Why the decision is what it is: the criteria that did not pass, or that all passed."""
        return [c.reason for c in self.criteria if c.outcome != PASS] or ["all criteria met"]

    def counts(self) -> dict:
        return {"input": self.input_rows, "kept": len(self.kept_texts), "dropped": len(self.dropped),
                "not_selected": (self.selection or {}).get("not_selected", 0),
                "dropped_by_reason": count_by_reason(self.dropped)}

    def to_dict(self) -> dict:
        dropped_sample = [row.to_dict() for reason in DROP_REASONS
                          for row in [r for r in self.dropped if r.reason == reason][:SAMPLE_ROWS]]
        return {
            "decision": self.decision,
            "reasons": self.reasons,
            "criteria": [c.to_dict() for c in self.criteria],
            "counts": self.counts(),
            "rates": self.rates,
            "mauve": self.mauve.to_dict() if self.mauve else None,
            "leakage": self.leakage.to_dict() if self.leakage else None,
            "checks": self.checks,
            "selection": self.selection,
            "decoding": self.decoding,
            "shape": {name: metrics.to_dict() for name, metrics in self.shape.items()},
            "length_histogram": self.length_histogram,
            "settings": self.settings,
            "identities": self.identities,
            "samples": {"kept": self.kept_texts[:SAMPLE_ROWS], "dropped": dropped_sample},
            "created_at": self.created_at,
        }

    def summary(self) -> dict:
        """The few figures a CLI line or an XCom carries."""
        scored = self.mauve is not None
        return {"decision": self.decision, "reasons": self.reasons, **self.counts(), **self.rates,
                "mauve": self.mauve.synthetic.mean if scored else None,
                "mauve_interval": list(self.mauve.bootstrap.interval("synthetic")) if scored else None,
                "mauve_reference": self.mauve.reference.mean if scored else None,
                "mauve_reference_interval": list(self.mauve.bootstrap.interval("reference")) if scored else None,
                "mauve_bar": next((c.threshold for c in self.criteria if c.metric == "mauve"), None),
                "precision": self.shape["synthetic"].precision if scored else None,
                "recall": self.shape["synthetic"].recall if scored else None}


def write_report(report: GateReport, out_dir: Path) -> dict[str, Path]:
    """Write gate_report.json, gate_report.html and all dropped rows (Parquet) into `out_dir`."""
    import pandas as pd

    from synth_core.quality.html_report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    paths = {"json": out_dir / GATE_REPORT_JSON, "html": out_dir / GATE_REPORT_HTML,
             "dropped_rows": out_dir / GATE_DROPPED_ROWS}
    paths["json"].write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    paths["html"].write_text(render_html(data))
    columns = ["index", "reason", "detail", "text"]
    pd.DataFrame([row.to_dict() for row in report.dropped], columns=columns).to_parquet(paths["dropped_rows"])
    return paths
