"""Where a gated batch goes next, and why: one rule for the Airflow DAG's `route` task and `synth run`.

A leaf module (no imports of ours), so the DAG files may import it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLISH, REVIEW, QUARANTINE = "publish", "review", "quarantine"


def next_step(gate: Mapping[str, Any], validation: Mapping[str, Any]) -> str:
    """`publish` (gate pass, validation passed), `review` (gate review, validation passed) or `quarantine`
    (gate fail, or a batch the synthetic validation rejected). The names are the DAG's task ids."""
    if gate["decision"] == "fail" or not validation["success"]:
        return QUARANTINE
    return {"pass": PUBLISH, "review": REVIEW}[gate["decision"]]


def quarantine_reason(gate: Mapping[str, Any], validation: Mapping[str, Any] | None = None,
                      review: str = "rejected on review (or the review timed out)") -> str:
    """Why the batch is quarantined. A quarantined `review` batch was not approved: `review` says how."""
    reasons = "; ".join(gate.get("reasons", [])) or "no reasons given"
    if validation is not None and not validation["success"]:
        return f"synthetic validation failed after gate decision {gate['decision']!r}: {validation['message']}"
    rejected = f"; {review}" if gate["decision"] == "review" else ""
    return f"gate decision {gate['decision']!r} ({reasons}){rejected}"
