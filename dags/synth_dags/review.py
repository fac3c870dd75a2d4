"""The human review of a borderline batch: one Human-in-the-loop branch with two named ways out."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import Param

APPROVE, REJECT = "Approve", "Reject"


class GateReviewOperator(HITLBranchOperator):
    """*Approve* continues to `publish`, *Reject* (also the answer when the review times out) to `quarantine`.

    A branch operator's return value is the task it chose, so who answered, and their comment, are kept
    in the `reviewer` XCom (chosen options, responding user, comment) for `publish` or `quarantine` to record.
    """

    def __init__(self, *, publish_task: str, quarantine_task: str, **kwargs: Any) -> None:
        comment = Param("", type="string", title="Comment",
                        description="why you approve or reject; recorded with the decision (manifest, gate page)")
        kwargs.pop("params", None)  # the DAG's trigger params: not questions for the reviewer
        super().__init__(options=[APPROVE, REJECT], defaults=[REJECT],
                         options_mapping={APPROVE: publish_task, REJECT: quarantine_task},
                         params={"comment": comment}, **kwargs)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            context["ti"].xcom_push(key="reviewer", value={
                "chosen_options": event["chosen_options"], "responded_by_user": event.get("responded_by_user"),
                "comment": str((event.get("params_input") or {}).get("comment") or "").strip()})
        return super().execute_complete(context=context, event=event)
