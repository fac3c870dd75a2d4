"""The review path again, with Airflow's metadata DB on the local PostgreSQL instead of SQLite.

Airflow binds its metadata DB once per process, so the run happens in a child pytest process with
SYNTH_TEST_AIRFLOW_DB=postgresql: its `airflow_db` fixture creates `synth_airflow_test_<random>`,
migrates it, runs the DAG (the reviewer answering through the REST API) and drops the database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.integration.conftest_airflow import DB_ENV, REPO

pytestmark = pytest.mark.integration
REVIEW_TEST = "tests/integration/test_dag_review.py::test_review_approved_publishes_with_the_reviewer"


def test_review_path_on_a_postgresql_metadata_db(postgres_url: str):
    import sqlalchemy as sa

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNTH_", "AWS_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", REVIEW_TEST, "-q", "-s", "-p", "no:cacheprovider",
                           "-p", "no:logging"], env={**env, DB_ENV: "postgresql"}, cwd=REPO,
                          capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b1 passed\b", done.stdout)
    [database] = re.findall(r"Airflow metadata DB: postgresql\S*/(synth_airflow_test_\w+)", done.stdout)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:  # the child dropped its database
        assert conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :d"), {"d": database}).scalar() == 0
    engine.dispose()
