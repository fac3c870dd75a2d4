"""Failure alerts and "review needed" messages: POST a JSON message to a webhook named by an Airflow connection.

Use `notify_failure` as a task's (or a DAG's) `on_failure_callback`, and `notify_review` as the review
step's notifier (it fires when a batch enters review, with the gate figures and links); both post to the connection
`synth_alerts` (or the id in `SYNTH_ALERT_CONN_ID`). `WebhookNotifier(conn_id=..., url=...)` is the
same callback for another connection or a fixed URL. The body is Slack- and
Teams-compatible (`text`) and carries the run's identifiers as fields:

    {"text": "...", "dag_id": ..., "task_id": ..., "map_index": ..., "run_id": ..., "try_number": ...,
     "domain": ..., "exception": ..., "log_url": ..., "logical_date": ...}

The connection holds the URL as `extra.webhook_url`, or in its URI form, e.g.
`AIRFLOW_CONN_SYNTH_ALERTS='https://hooks.example.com/services/T0/B0/XYZ'`. No connection configured
means no alert (logged as a warning). A webhook that still fails after retries raises
`WebhookError`, which Airflow logs with the callback; the URL itself (often a secret) is never logged.

The same messages also go by e-mail when `SYNTH_ALERT_EMAIL_TO` lists addresses: `EmailNotifier` hands
them to the SMTP provider's `SmtpNotifier`, which sends through the Airflow SMTP connection
`SYNTH_ALERT_SMTP_CONN_ID` (default `smtp_default`: host, port, login, password; `extra.from_email`).
One builder per message (`failure_message`, `review_message`) feeds both channels.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from synth_core.layout import DAG_ID_PREFIX, required_action_path

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "synth_alerts"


class WebhookError(RuntimeError):
    """The webhook refused the alert or stayed unreachable through every attempt."""


def webhook_url(conn: Any) -> str:
    """The URL an Airflow connection names: `extra.webhook_url`, else a full URL in `host`, else its URI parts."""
    if url := (conn.extra_dejson or {}).get("webhook_url"):
        return url
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        return host
    scheme = "https" if conn.conn_type == "https" else "http"
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}"


def failure_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert body for a task's (or a DAG run's) failure context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "")
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or getattr(dag_run, "run_id", "")
    exception = context.get("exception") or context.get("reason") or ""
    body = {
        "dag_id": dag_id, "task_id": getattr(ti, "task_id", None), "map_index": getattr(ti, "map_index", None),
        "run_id": run_id, "try_number": getattr(ti, "try_number", None),
        "domain": dag_id.removeprefix(DAG_ID_PREFIX) if dag_id.startswith(DAG_ID_PREFIX) else None,
        "exception": f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException)
        else str(exception),
        "log_url": getattr(ti, "log_url", None),
        "logical_date": str(context.get("logical_date") or getattr(dag_run, "logical_date", "") or "") or None,
    }
    where = body["task_id"] if body["task_id"] else "DAG run"
    if body["map_index"] is not None and body["map_index"] >= 0:
        where += f"[{body['map_index']}]"
    try_text = f", try {body['try_number']}" if body["try_number"] else ""
    body["text"] = f"Airflow failure: {dag_id} {where} (run {run_id}{try_text}): {body['exception'][:500]}"
    return body


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def review_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The "review needed" message, sent when a batch enters review: the gate's figures, the link to its gate
    page and to the review's Required Action. Links are absolute when
    $AIRFLOW__API__BASE_URL is set (as a deployment sets it), else relative to the Airflow UI."""
    ti = context.get("ti") or context.get("task_instance")
    gate = ti.xcom_pull(task_ids="filter_and_gate") or {}
    dag_id, run_id = ti.dag_id, ti.run_id
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    interval = gate.get("mauve_interval") or [None, None]
    body = {
        "dag_id": dag_id, "run_id": run_id, "task_id": ti.task_id,
        "domain": dag_id.removeprefix(DAG_ID_PREFIX) if dag_id.startswith(DAG_ID_PREFIX) else None,
        "mauve": gate.get("mauve"), "mauve_interval": gate.get("mauve_interval"), "mauve_bar": gate.get("mauve_bar"),
        "mauve_reference": gate.get("mauve_reference"), "kept": gate.get("kept"), "reasons": gate.get("reasons", []),
        "gate_page": base + gate["gate_page"] if gate.get("gate_page") else None,
        "review_url": base + required_action_path(dag_id, run_id),
    }
    body["text"] = (f"Review needed: {body['domain'] or dag_id} run {run_id}. MAUVE {_score(body['mauve'])} "
                    f"[{_score(interval[0])}, {_score(interval[1])}] against the bar {_score(body['mauve_bar'])} "
                    f"(real vs real {_score(body['mauve_reference'])}); {'; '.join(body['reasons'])[:500]}. "
                    f"Gate page: {body['gate_page']}. Approve or reject: {body['review_url']}")
    return body


def post_json(url: str, body: Mapping[str, Any], attempts: int = 3, backoff_s: float = 1.0,
              timeout_s: float = 10.0) -> int:
    """POST `body` as JSON; retries connection errors and 5xx/429 with doubling back-off. Returns the status."""
    data = json.dumps(body, default=str).encode()
    where = urlparse(url).netloc  # never the full URL: its path is often the secret
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise WebhookError(f"webhook at {where} refused the alert: HTTP {exc.code}") from None
            error: str = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            error = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            log.warning("alert to %s failed (%s), attempt %d/%d", where, error, attempt, attempts)
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise WebhookError(f"webhook at {where} unreachable after {attempts} attempts: {error}")


class WebhookNotifier:
    """A callback posting `message(context)` (default: `failure_message`) to the webhook of `conn_id` (or `url`):
    a task's failure callback, or with `review_message` a notifier of the review step.

    A plain callable rather than an Airflow `BaseNotifier`, so importing this module never imports
    Airflow (the CLI and the library stay Airflow-free); the connection is looked up when it fires.
    """

    def __init__(self, conn_id: str | None = None, url: str | None = None, attempts: int = 3,
                 backoff_s: float = 1.0, message: Callable[[Mapping[str, Any]], dict[str, Any]] = failure_message):
        self.conn_id = conn_id or os.environ.get("SYNTH_ALERT_CONN_ID") or DEFAULT_CONN_ID
        self.url, self.attempts, self.backoff_s, self.message = url, attempts, backoff_s, message

    def _resolve_url(self) -> str | None:
        if self.url:
            return self.url
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return webhook_url(Connection.get(self.conn_id))
        except AirflowNotFoundException:
            return None

    def __call__(self, context: Any) -> None:
        body = self.message(context)
        url = self._resolve_url()
        if not url:
            log.warning("no alert webhook configured (Airflow connection %r); not notified: %s",
                        self.conn_id, body["text"])
            return
        status = post_json(url, body, self.attempts, self.backoff_s)
        kind = self.message.__name__.removesuffix("_message")  # failure, review
        log.info("%s alert sent to %s (HTTP %d)", kind, urlparse(url).netloc, status)


def email_html(body: Mapping[str, Any]) -> str:
    """A message as a small HTML mail: its text, then every field in a table."""
    from html import escape

    rows = "".join(f"<tr><th align=left>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                   for k, v in body.items() if k != "text" and v not in (None, "", []))
    return f"<p>{escape(body['text'])}</p><table>{rows}</table>"


class EmailNotifier:
    """A callback sending `message(context)` by e-mail to `to` (default: $SYNTH_ALERT_EMAIL_TO, comma-separated)
    through the SMTP provider's `SmtpNotifier` and the connection `conn_id` (default: $SYNTH_ALERT_SMTP_CONN_ID,
    else `smtp_default`). No addresses: nothing sent, nothing logged."""

    def __init__(self, to: str | None = None, conn_id: str | None = None,
                 message: Callable[[Mapping[str, Any]], dict[str, Any]] = failure_message):
        self.to, self.conn_id, self.message = to, conn_id, message

    def __call__(self, context: Any) -> None:
        to = [a.strip() for a in (self.to or os.environ.get("SYNTH_ALERT_EMAIL_TO", "")).split(",") if a.strip()]
        if not to:
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        body = self.message(context)
        conn_id = self.conn_id or os.environ.get("SYNTH_ALERT_SMTP_CONN_ID") or "smtp_default"
        # notify(), not __call__: the message is final text, not a Jinja template to render
        SmtpNotifier(to=to, subject=body["text"].split(". ")[0][:150], html_content=email_html(body),
                     smtp_conn_id=conn_id).notify(dict(context))
        kind = self.message.__name__.removesuffix("_message")
        log.info("%s alert e-mailed to %d address(es) through %s", kind, len(to), conn_id)


def notify_failure(context: Any) -> None:
    """`on_failure_callback` for tasks and DAGs: alert the `synth_alerts` webhook and, when configured, by e-mail
    (see the module doc)."""
    WebhookNotifier()(context)
    EmailNotifier()(context)


def notify_review(context: Any) -> None:
    """Notifier of the review step: tell the `synth_alerts` webhook, and the e-mail list when configured, that a
    batch waits for a reviewer."""
    WebhookNotifier(message=review_message)(context)
    EmailNotifier(message=review_message)(context)
