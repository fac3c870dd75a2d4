"""Reading, rendering, normalising and splitting governed targets; source config checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from synth_core.config import ConfigError
from synth_core.sources import (
    assign_split,
    content_hash,
    describe_source,
    load_target_split,
    normalise_targets,
    read_source_rows,
)
from tests.conftest import TARGET_ROWS, domain_config

pytestmark = pytest.mark.unit


def test_jsonl_csv_and_parquet_give_the_same_targets_and_hash(tmp_path: Path) -> None:
    frame = pd.DataFrame(TARGET_ROWS)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    hashes = set()
    for uri in ("targets.jsonl", "t.csv", "t.parquet"):
        config = domain_config(tmp_path, {"uri": str(tmp_path / uri)})
        targets = normalise_targets(config, read_source_rows(config))
        assert list(targets.columns) == ["text", "topic"] and len(targets) == 40
        hashes.add(content_hash(targets))
    assert len(hashes) == 1
    assert "Question: What is 3 plus 4?\nAnswer: It is 7." in targets["text"].tolist()


def test_hash_and_split_ignore_source_row_order(tmp_path: Path) -> None:
    config = domain_config(tmp_path)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(json.dumps(r) + "\n" for r in reversed(TARGET_ROWS)))
    first = load_target_split(config)
    second = load_target_split(domain_config(tmp_path, {"uri": str(shuffled)}))
    assert first == second
    assert (len(first.train), len(first.heldout), len(first.validation)) == (26, 10, 4)


def test_changed_data_or_seed(tmp_path: Path) -> None:
    base = load_target_split(domain_config(tmp_path))
    reseeded = load_target_split(domain_config(tmp_path, {"split_seed": 8}))
    assert reseeded.snapshot_hash == base.snapshot_hash and reseeded.heldout != base.heldout
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps({**r, "answer": r["answer"] + "!"}) + "\n" for r in TARGET_ROWS))
    assert load_target_split(domain_config(tmp_path, {"uri": str(edited)})).snapshot_hash != base.snapshot_hash


def test_split_is_seeded_and_sized() -> None:
    assert assign_split(10, 0.3, 1) == assign_split(10, 0.3, 1)
    assert assign_split(10, 0.3, 1).count("heldout") == 3
    assert assign_split(1, 0.3, 1) == ["train"]


def test_validation_rows_come_out_of_train_and_leave_the_heldout_rows_alone() -> None:
    plain, with_validation = assign_split(100, 0.2, 3), assign_split(100, 0.2, 3, validation_fraction=0.1)
    assert with_validation.count("validation") == 10 and with_validation.count("heldout") == 20
    assert all(b == "heldout" for a, b in zip(plain, with_validation, strict=True) if a == "heldout")
    assert all(a == "train" for a, b in zip(plain, with_validation, strict=True) if b == "validation")


def test_null_cells_render_to_null_text_and_missing_columns_are_named(tmp_path: Path) -> None:
    (tmp_path / "n.jsonl").write_text('{"question": "Q1?", "answer": null, "topic": "x"}\n'
                                      '{"question": "Q2?", "answer": "A2", "topic": "x"}\n')
    config = domain_config(tmp_path, {"uri": str(tmp_path / "n.jsonl")})
    assert normalise_targets(config, read_source_rows(config))["text"].isna().sum() == 1
    with pytest.raises(ConfigError, match=r"arith: source.text_template=.*names \['missing'\], which the source"):
        normalise_targets(domain_config(tmp_path, {"text_template": "{missing}"}), read_source_rows(config))
    with pytest.raises(ConfigError, match=r"source.metadata_columns=.*\['nope'\]"):
        normalise_targets(domain_config(tmp_path, {"metadata_columns": ["nope"]}), read_source_rows(config))


@pytest.mark.parametrize(("template", "message"), [
    ("{}", "must be a plain column name"), ("{q.attr}", "must be a plain column name"),
    ("{unclosed", "not a valid template"), ("no fields", "at least one {column}")])
def test_a_template_that_could_never_render_fails_on_load(tmp_path: Path, template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"source.text_template=.*" + re.escape(message)):
        domain_config(tmp_path, {"text_template": template})


def test_max_rows_and_lineage_description(tmp_path: Path) -> None:
    config = domain_config(tmp_path, {"max_rows": 5})
    assert len(read_source_rows(config)) == 5
    assert describe_source(config) == {"kind": "file", "uri": (tmp_path / "targets.jsonl").as_uri(), "format": "jsonl"}
    sql = domain_config(tmp_path, {"kind": "sql", "query": "SELECT 1", "conn_env": "DB_URL"})
    assert describe_source(sql) == {"kind": "sql", "query": "SELECT 1", "conn_id": "", "conn_env": "DB_URL"}


@pytest.mark.parametrize(("source", "message"), [
    ({"kind": "sql", "query": "DELETE FROM t", "conn_env": "DB"}, "source.query='DELETE FROM t'"),
    ({"kind": "sql", "query": "SELECT 1; DROP TABLE t", "conn_env": "DB"}, "one read-only SELECT"),
    ({"kind": "sql", "query": "SELECT 1"}, "exactly one of source.conn_id or source.conn_env"),
    ({"kind": "sql", "query": "SELECT 1", "conn_env": "postgresql://u:pw@h/db"}, "never goes in YAML"),
    ({"metadata_columns": ["text"]}, "snapshot columns"),
    ({"format": "xml"}, "source.format='xml'"),
])
def test_source_config_errors_name_key_and_value(tmp_path: Path, source: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        domain_config(tmp_path, source)


def test_unknown_file_suffix_asks_for_a_format(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("")
    with pytest.raises(ValueError, match="set source.format"):
        read_source_rows(domain_config(tmp_path, {"uri": str(tmp_path / "t.txt")}))


def test_sql_url_comes_from_the_named_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = domain_config(tmp_path, {"kind": "sql", "query": "SELECT 1", "conn_env": "SYNTH_TEST_DB"})
    monkeypatch.delenv("SYNTH_TEST_DB", raising=False)
    with pytest.raises(ValueError, match="source.conn_env='SYNTH_TEST_DB': environment variable is not set"):
        read_source_rows(config)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.jsonl", None, "file not found"),
    ("empty.jsonl", b"", "the file is empty"),
    ("latin1.csv", "question,answer\nqu\xe9,r\xe9ponse\n".encode("latin-1"), r"not UTF-8 text \(invalid"),
    ("broken.jsonl", b'{"question": "a"\n', "not readable as jsonl"),
    ("broken.parquet", b"not parquet", "not readable as parquet"),
])
def test_a_bad_source_file_is_a_config_error_naming_the_file(tmp_path: Path, name, content, message) -> None:
    from synth_core.config import ConfigError

    if content is not None:
        (tmp_path / name).write_bytes(content)
    config = domain_config(tmp_path, {"uri": str(tmp_path / name)})
    with pytest.raises(ConfigError, match=rf"arith: source.uri='{tmp_path / name}': {message}"):
        read_source_rows(config)
