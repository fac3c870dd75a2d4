"""Real Airflow components as subprocesses for integration tests: an isolated AIRFLOW_HOME, the
`airflow` CLI, long-running components (api-server, scheduler, Celery workers...) with their logs,
and SimpleAuthManager users with known passwords.

Every process is started in its own session and stopped by its own process group id (SIGTERM, then
SIGKILL): nothing else on the machine is touched. A component that dies or never becomes healthy
fails the test with the tail of its log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
USERS = {"admin": "admin", "viewer": "viewer"}  # username -> SimpleAuthManager role


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@dataclass
class Component:
    """One long-running Airflow process (its own process group) and its log file."""

    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive():
            return
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class AirflowHome:
    """An AIRFLOW_HOME in a temp dir with its own config-by-environment, users and components."""

    path: Path
    config: dict[str, str] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.path / "dags").mkdir(parents=True, exist_ok=True)
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        passwords_file = self.path / "simple_auth_manager_passwords.json"
        passwords_file.write_text(json.dumps(self.passwords))
        self.config = {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.path / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.path / "logs"),
            **self.config,
        }

    def env(self) -> dict[str, str]:
        """This process's environment without any AIRFLOW__ settings of its own, plus this home's."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return {**base, "AIRFLOW_HOME": str(self.path), "PYTHONUNBUFFERED": "1", **self.config}

    def cli(self, *args: str, timeout_s: float = 120.0) -> str:
        """Run `airflow <args>` to completion; fails the test with its output if it fails."""
        done = subprocess.run([AIRFLOW, *args], env=self.env(), cwd=self.path, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            pytest.fail(f"`airflow {' '.join(args)}` exited {done.returncode}:\n{(done.stdout + done.stderr)[-4000:]}")
        return done.stdout

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Component:
        log = self.path / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(args, env={**self.env(), **(env or {})}, cwd=self.path, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        component = Component(name, process, log)
        self.components.append(component)
        return component

    def start_api_server(self, port: int, timeout_s: float = 90.0) -> str:
        """`airflow api-server` on 127.0.0.1:port; returns its base URL once /api/v2/monitor/health answers."""
        server = self.start("api-server", AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "1")
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{base}/api/v2/monitor/health", server, timeout_s)
        return base

    def stop_all(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()


def wait_until_healthy(url: str, component: Component, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    error: object = None
    while time.monotonic() < deadline:
        if not component.alive():
            pytest.fail(f"{component.name} exited {component.process.returncode} before {url} answered:\n"
                        f"{log_tail(component.log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            error = exc
        time.sleep(0.5)
    pytest.fail(f"{component.name}: {url} not healthy after {timeout_s:.0f}s ({error}):\n{log_tail(component.log)}")


def request_token(base_url: str, username: str, password: str) -> str:
    """A JWT from SimpleAuthManager's POST /auth/token."""
    body = json.dumps({"username": username, "password": password}).encode()
    req = urllib.request.Request(f"{base_url}/auth/token", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())["access_token"]


@dataclass
class ApiClient:
    """Airflow's REST API (/api/v2) as one user, with a JWT from /auth/token."""

    base_url: str
    token: str

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}/api/v2{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_for(self, path: str, done, timeout_s: float, what: str, home: AirflowHome) -> dict:
        """Poll GET `path` until `done(body)` holds; fails with every component's log tail otherwise."""
        deadline = time.monotonic() + timeout_s
        status, body = 0, {}
        while time.monotonic() < deadline:
            for component in home.components:
                if not component.alive():
                    pytest.fail(f"{component.name} died while waiting for {what}:\n{log_tail(component.log)}")
            status, body = self.call("GET", path)
            if status == 200 and done(body):
                return body
            time.sleep(1.0)
        logs = "\n".join(f"--- {c.name}:\n{log_tail(c.log, 2500)}" for c in home.components)
        pytest.fail(f"{what}: not done after {timeout_s:.0f}s (last answer {status}: {str(body)[:1500]})\n{logs}")
