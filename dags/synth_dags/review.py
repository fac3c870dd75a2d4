"""The human review of a borderline batch: one Human-in-the-loop branch with two named ways out."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

APPROVE, REJECT = "Approve", "Reject"


class GateReviewOperator(HITLBranchOperator):
    """*Approve* continues to `publish`, *Reject* (also the answer when the review times out) to `quarantine`.

    A branch operator's return value is the task it chose, so who answered is kept in the `reviewer`
    XCom (the HITL answer: chosen options and the responding user) for `publish` to record.
    """

    def __init__(self, *, publish_task: str, quarantine_task: str, **kwargs: Any) -> None:
        super().__init__(options=[APPROVE, REJECT], defaults=[REJECT],
                         options_mapping={APPROVE: publish_task, REJECT: quarantine_task}, **kwargs)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            context["ti"].xcom_push(key="reviewer", value={"chosen_options": event["chosen_options"],
                                                          "responded_by_user": event.get("responded_by_user")})
        return super().execute_complete(context=context, event=event)
