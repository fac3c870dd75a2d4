"""Governed sources on real servers: a SQL table on PostgreSQL and a file on S3."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from synth_core.snapshot import read_lineage, refresh
from synth_core.sources import load_target_split, read_source_rows
from synth_core.store import LocalStore, open_store
from tests.conftest import TARGET_ROWS, domain_config

pytestmark = pytest.mark.integration


def _sql_config(tmp_path: Path, table: str, **source):
    return domain_config(tmp_path, {"kind": "sql", "query": f"SELECT question, answer, topic FROM {table}",
                                    **source})


def test_sql_source_from_an_env_var_matches_the_file_source(tmp_path: Path, postgres_url: str, postgres_table: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_TARGETS_DB", postgres_url)
    config = _sql_config(tmp_path, postgres_table, conn_env="SYNTH_TARGETS_DB")
    store = LocalStore(tmp_path / "artifacts")
    summary = refresh(config, "run1", store)
    assert summary["rows"] == 40
    assert summary["snapshot_hash"] == load_target_split(domain_config(tmp_path)).snapshot_hash
    lineage = read_lineage(config, "run1", store)
    assert lineage["source"] == {"kind": "sql", "query": config.source.query, "conn_id": "",
                                 "conn_env": "SYNTH_TARGETS_DB"}
    assert "127.0.0.1" not in str(lineage)


def test_sql_source_from_an_airflow_connection(tmp_path: Path, postgres_url: str, postgres_table: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_TARGETS", postgres_url.replace("postgresql+psycopg2://", "postgres://"))
    config = _sql_config(tmp_path, postgres_table, conn_id="synth_targets")
    assert len(read_source_rows(config)) == 40


def test_sql_source_runs_read_only(tmp_path: Path, postgres_url: str, postgres_table: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    monkeypatch.setenv("SYNTH_TARGETS_DB", postgres_url)
    sneaky = f"WITH gone AS (DELETE FROM {postgres_table} RETURNING *) SELECT question, answer, topic FROM gone"
    config = domain_config(tmp_path, {"kind": "sql", "query": sneaky, "conn_env": "SYNTH_TARGETS_DB"})
    with pytest.raises(pd.errors.DatabaseError, match="read-only transaction"):
        read_source_rows(config)
    with sa.create_engine(postgres_url).connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {postgres_table}")).scalar() == 40


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_file_source_on_s3(tmp_path: Path, s3_prefix: str, fmt: str) -> None:
    frame = pd.DataFrame(TARGET_ROWS)
    buffer = io.BytesIO()
    frame.to_json(buffer, orient="records", lines=True) if fmt == "jsonl" else frame.to_parquet(buffer, index=False)
    open_store(s3_prefix).put_bytes(f"governed/targets.{fmt}", buffer.getvalue())
    config = domain_config(tmp_path, {"uri": f"{s3_prefix}/governed/targets.{fmt}"})
    store = LocalStore(tmp_path / "artifacts")
    summary = refresh(config, "run1", store)
    assert summary["snapshot_hash"] == load_target_split(domain_config(tmp_path)).snapshot_hash
    assert read_lineage(config, "run1", store)["source"]["uri"] == f"{s3_prefix}/governed/targets.{fmt}"
