"""Failure alerts against a real local HTTP server: the body, the connection lookup, retries, refusals.

Looking up an Airflow connection imports Airflow, which this pytest process must not do (the in-process
Airflow fixtures configure it first), so the tests that go through a connection run the callback in a
subprocess, as a task would; the others pass the URL directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from synth_core.notify import WebhookError, WebhookNotifier, failure_message, review_message, webhook_url

pytestmark = pytest.mark.unit


class Webhook:
    """A local server recording every POST; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append({"path": self.path, "content_type": self.headers["Content-Type"],
                                      "json": json.loads(body)})
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/SECRET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def task_context(**ti: object) -> dict:
    fields = {"dag_id": "synth__gsm8k", "task_id": "generate", "map_index": 1, "try_number": 2,
              "run_id": "scheduled__2026-01-05T00:00:00+00:00", "log_url": "http://airflow/log", **ti}
    return {"ti": SimpleNamespace(**fields), "exception": RuntimeError("CUDA out of memory"),
            "logical_date": "2026-01-05T00:00:00+00:00"}


def in_airflow_task(call: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `call` (on `context`, a task's failure context) in a fresh interpreter, AIRFLOW_HOME=`home`."""
    code = textwrap.dedent(f"""
        import logging, sys, types
        from synth_core.notify import WebhookNotifier, notify_failure
        handler = logging.StreamHandler(sys.stdout)
        logging.getLogger("synth_core.notify").addHandler(handler)
        logging.getLogger("synth_core.notify").setLevel(logging.INFO)
        context = {{"ti": types.SimpleNamespace(dag_id="synth__gsm8k", task_id="generate", map_index=1,
                                               try_number=2, run_id="scheduled__2026-01-05T00:00:00+00:00",
                                               log_url="http://airflow/log"),
                   "exception": RuntimeError("CUDA out of memory")}}
        {call}
    """)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "SYNTH_ALERT"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, "AIRFLOW_HOME": str(home), **env}, capture_output=True, text=True,
                          timeout=120)


def test_notify_failure_posts_the_failure_to_the_connections_webhook(webhook: Webhook, tmp_path: Path):
    done = in_airflow_task("notify_failure(context)", tmp_path, AIRFLOW_CONN_SYNTH_ALERTS=webhook.url)
    assert done.returncode == 0, done.stderr
    (request,) = webhook.received
    assert request["path"] == "/services/T0/SECRET" and request["content_type"] == "application/json"
    body = request["json"]
    assert body["dag_id"] == "synth__gsm8k" and body["domain"] == "gsm8k" and body["task_id"] == "generate"
    assert (body["map_index"], body["try_number"]) == (1, 2)
    assert body["exception"] == "RuntimeError: CUDA out of memory" and body["log_url"] == "http://airflow/log"
    assert body["text"] == ("Airflow failure: synth__gsm8k generate[1] (run scheduled__2026-01-05T00:00:00+00:00, "
                            "try 2): RuntimeError: CUDA out of memory")
    assert "SECRET" not in done.stdout + done.stderr and "failure alert sent to 127.0.0.1" in done.stdout


def test_other_connection_ids_and_a_missing_connection(webhook: Webhook, tmp_path: Path):
    conn = json.dumps({"conn_type": "http", "extra": {"webhook_url": webhook.url + "/team"}})
    done = in_airflow_task("WebhookNotifier(conn_id='team_alerts')(context); notify_failure(context)", tmp_path,
                           AIRFLOW_CONN_TEAM_ALERTS=conn)
    assert done.returncode == 0, done.stderr
    assert [r["path"] for r in webhook.received] == ["/services/T0/SECRET/team"]
    assert "no alert webhook configured (Airflow connection 'synth_alerts'); not notified" in done.stdout
    done = in_airflow_task("notify_failure(context)", tmp_path, SYNTH_ALERT_CONN_ID="team_alerts",
                           AIRFLOW_CONN_TEAM_ALERTS=conn)
    assert done.returncode == 0 and len(webhook.received) == 2, done.stderr


def test_transient_errors_are_retried_and_refusals_are_not(webhook: Webhook, caplog: pytest.LogCaptureFixture):
    webhook.statuses = [503, 502]
    WebhookNotifier(url=webhook.url, backoff_s=0)(task_context())
    assert len(webhook.received) == 3
    webhook.received.clear()
    webhook.statuses = [403]
    with pytest.raises(WebhookError, match="HTTP 403") as refused:
        WebhookNotifier(url=webhook.url, backoff_s=0)(task_context())
    assert len(webhook.received) == 1
    assert "SECRET" not in str(refused.value) and "SECRET" not in caplog.text


def test_unreachable_webhook_raises_after_every_attempt(webhook: Webhook):
    port = webhook.server.server_address[1]
    webhook.server.shutdown()
    webhook.server.server_close()
    with pytest.raises(WebhookError, match=f"127.0.0.1:{port} unreachable after 2 attempts"):
        WebhookNotifier(url=webhook.url, attempts=2, backoff_s=0)(task_context())


def test_webhook_url_forms():
    conn = SimpleNamespace(extra_dejson={"webhook_url": "https://x/y"}, host="h", conn_type="http", port=None,
                           schema="")
    assert webhook_url(conn) == "https://x/y"
    conn = SimpleNamespace(extra_dejson={}, host="https://hooks.example.com/x", conn_type="http", port=None,
                           schema="")
    assert webhook_url(conn) == "https://hooks.example.com/x"
    conn = SimpleNamespace(extra_dejson={}, host="hooks.example.com", conn_type="https", port=8443, schema="a/b")
    assert webhook_url(conn) == "https://hooks.example.com:8443/a/b"


def test_dag_level_failure_context():
    dag_run = SimpleNamespace(dag_id="synth__mbpp", run_id="manual__1", logical_date=None)
    body = failure_message({"dag_run": dag_run, "reason": "task_failure"})
    assert body["text"] == "Airflow failure: synth__mbpp DAG run (run manual__1): task_failure"
    assert body["task_id"] is None and body["domain"] == "mbpp"


def test_review_message_carries_the_gate_figures_and_both_links(webhook: Webhook, monkeypatch: pytest.MonkeyPatch):
    gate = {"mauve": 0.7412, "mauve_interval": [0.69, 0.78], "mauve_bar": 0.7761, "mauve_reference": 0.97,
            "kept": 400, "reasons": ["MAUVE 0.741 [0.690, 0.780] vs bar 0.776: needs a human review"],
            "gate_page": "/synth-gates/domains/boolq/runs/manual__2026-12-01T09%3A23%3A08"}
    ti = SimpleNamespace(dag_id="synth__boolq", task_id="review", run_id="manual__2026-12-01T09:23:08",
                         xcom_pull=lambda task_ids: gate if task_ids == "filter_and_gate" else None)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    WebhookNotifier(url=webhook.url, message=review_message)({"ti": ti})
    [received] = webhook.received
    body = received["json"]
    assert body["domain"] == "boolq" and body["mauve_bar"] == 0.7761 and body["kept"] == 400
    assert body["gate_page"] == "https://airflow.example.com" + gate["gate_page"]
    assert body["review_url"] == ("https://airflow.example.com/dags/synth__boolq/runs/manual__2026-12-01T09%3A23%3A08"
                                  "/tasks/review/required_actions")
    assert body["text"].startswith("Review needed: boolq run manual__2026-12-01T09:23:08. MAUVE 0.741 [0.690, 0.780] "
                                   "against the bar 0.776 (real vs real 0.970)")
    assert "Approve or reject: " in body["text"] and body["review_url"] in body["text"]


class MailSink:
    """A real SMTP server (aiosmtpd) on a free local port, keeping every message it accepts."""

    def __init__(self) -> None:
        import socket

        from aiosmtpd.controller import Controller

        self.messages: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
                sink.messages.append(envelope)
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


def test_failure_and_review_alerts_are_e_mailed_through_the_smtp_provider(tmp_path: Path):
    import email

    sink = MailSink()
    try:
        conn = json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": sink.port,
                           "extra": {"from_email": "synth@example.com", "disable_ssl": True, "disable_tls": True}})
        done = in_airflow_task("notify_failure(context)", tmp_path, SYNTH_ALERT_EMAIL_TO="ops@example.com, dg@example.com",
                               AIRFLOW_CONN_SMTP_DEFAULT=conn)
        assert done.returncode == 0, done.stderr[-3000:]
        [mail] = sink.messages
        assert sorted(mail.rcpt_tos) == ["dg@example.com", "ops@example.com"] and mail.mail_from == "synth@example.com"
        message = email.message_from_bytes(mail.content)
        assert message["Subject"].startswith("Airflow failure: synth__gsm8k generate[1]")
        html = next(part for part in message.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
        assert b"CUDA out of memory" in html and b"http://airflow/log" in html
        assert "failure alert e-mailed to 2 address(es) through smtp_default" in done.stdout
        done = in_airflow_task("notify_failure(context)", tmp_path, AIRFLOW_CONN_SMTP_DEFAULT=conn)
        assert done.returncode == 0 and len(sink.messages) == 1  # no addresses configured: no mail
    finally:
        sink.controller.stop()
