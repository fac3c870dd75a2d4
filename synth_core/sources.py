"""Governed target samples: read a domain's source, render each row to one training text, split.

Sources are a file (JSONL, CSV or Parquet; local or `s3://`) or a read-only SQL query. Rows are
normalised (rendered, nulls unified, sorted by content) before hashing and splitting, so the same
data gives the same hash and the same train/held-out split whatever order the source returns it in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from synth_core.config import ConfigError, DomainConfig
from synth_core.store import file_uri

_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class TargetSplit:
    """The snapshot's texts by split: `train` (training, context vectors, selection), `heldout` (the
    gate's comparison) and `validation` (choosing the decoding: neither trained on nor gated against)."""

    train: list[str]
    heldout: list[str]
    snapshot_hash: str
    validation: list[str] = field(default_factory=list)


def _file_format(config: DomainConfig) -> str:
    src = config.source
    if src.format != "auto":
        return src.format
    suffix = PurePosixPath(src.uri).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"source.uri={src.uri!r}: cannot tell the format from {suffix!r}; "
                         f"set source.format to one of jsonl, csv, parquet")
    return _FORMATS[suffix]


def _read_file_bytes(config: DomainConfig) -> bytes:
    src = config.source
    if src.uri.startswith("s3://"):
        from synth_core.s3 import split_s3_uri
        from synth_core.store import S3Store

        bucket, key = split_s3_uri(src.uri)
        return S3Store(f"s3://{bucket}", src.conn_id).get_bytes(key)
    return config.resolve_path(src.uri).read_bytes()


def _read_file(config: DomainConfig) -> pd.DataFrame:
    """The source file as a frame; a missing, empty, non-UTF-8 or unparsable file is a ConfigError that
    names the domain, the URI and what is wrong (deterministic: Airflow does not retry it)."""
    import pyarrow

    where = f"{config.name}: source.uri={config.source.uri!r}"
    fmt = _file_format(config)
    try:
        raw = _read_file_bytes(config)
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    if not raw.strip():
        raise ConfigError(f"{where}: the file is empty")
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        text = io.StringIO(raw.decode("utf-8"))
        return pd.read_json(text, lines=True, dtype=False) if fmt == "jsonl" else pd.read_csv(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, pyarrow.ArrowException) as exc:
        raise ConfigError(f"{where}: not readable as {fmt}: {exc}") from None


def sql_url(config: DomainConfig) -> str:
    """The SQLAlchemy URL, from an Airflow connection or an env var (never from the YAML itself).

    Plain PostgreSQL URLs get the psycopg2 driver we pin (SQLAlchemy 2.1 would otherwise pick psycopg 3).
    """
    src = config.source
    if src.conn_env:
        if not os.environ.get(src.conn_env):
            raise ValueError(f"source.conn_env={src.conn_env!r}: environment variable is not set")
        url = os.environ[src.conn_env]
    else:
        from airflow.sdk import BaseHook

        url = BaseHook.get_connection(src.conn_id).get_uri()
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgres", "postgresql") else url


def _read_sql(config: DomainConfig) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(sql_url(config))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(postgresql_readonly=True)
            frame = pd.read_sql_query(sa.text(config.source.query), conn)
            conn.rollback()
            return frame
    finally:
        engine.dispose()


def read_source_rows(config: DomainConfig) -> pd.DataFrame:
    frame = _read_sql(config) if config.source.kind == "sql" else _read_file(config)
    return frame.head(config.source.max_rows) if config.source.max_rows else frame


def describe_source(config: DomainConfig) -> dict[str, Any]:
    """What lineage records about where the rows came from (connection names, never secrets)."""
    src = config.source
    if src.kind == "sql":
        return {"kind": "sql", "query": src.query, "conn_id": src.conn_id, "conn_env": src.conn_env}
    uri = src.uri if src.uri.startswith("s3://") else file_uri(config.resolve_path(src.uri))
    return {"kind": "file", "uri": uri, "format": _file_format(config)}


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, (list, dict, np.ndarray)) and bool(pd.isna(value)))


def render_texts(config: DomainConfig, frame: pd.DataFrame) -> list[str | None]:
    """One text per row; None where a column the template needs is null, so validation catches it."""
    template = config.source.text_template
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(fields - set(frame.columns))
    if missing:
        raise ConfigError(f"{config.name}: source.text_template={template!r} names {missing}, which the source "
                          f"does not have (its columns: {list(frame.columns)})")
    return [None if any(_is_null(row[f]) for f in fields) else template.format(**row)
            for row in frame[sorted(fields)].to_dict("records")]


def normalise_targets(config: DomainConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """`text` plus the metadata columns, sorted by each row's canonical JSON (order-independent)."""
    missing = sorted(set(config.source.metadata_columns) - set(frame.columns))
    if missing:
        raise ConfigError(f"{config.name}: source.metadata_columns={config.source.metadata_columns!r}: {missing} "
                          f"not in the source's columns {list(frame.columns)}")
    targets = frame[config.source.metadata_columns].copy()
    targets.insert(0, "text", pd.array(render_texts(config, frame), dtype=object))
    order = np.argsort(canonical_rows(targets), kind="stable")
    return targets.iloc[order].reset_index(drop=True)


def canonical_rows(targets: pd.DataFrame) -> list[str]:
    records = targets.astype(object).where(targets.notna(), None).to_dict("records")
    return [json.dumps(r, sort_keys=True, default=str, ensure_ascii=False) for r in records]


def content_hash(targets: pd.DataFrame) -> str:
    """sha256 over the normalised rows: equal data gives an equal hash."""
    digest = hashlib.sha256()
    for line in canonical_rows(targets):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def assign_split(n_rows: int, holdout_fraction: float, seed: int, validation_fraction: float = 0.0) -> list[str]:
    """`train`, `heldout` or `validation` per row, from a seeded permutation (the held-out rows do not
    depend on validation_fraction: validation rows come out of what would be train)."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_holdout = max(1, round(n_rows * holdout_fraction)) if n_rows > 1 else 0
    n_validation = round(n_rows * validation_fraction)
    split = np.full(n_rows, "train", dtype=object)
    split[order[:n_holdout]] = "heldout"
    split[order[n_holdout : n_holdout + n_validation]] = "validation"
    return split.tolist()


def split_rows(config: DomainConfig, n_rows: int) -> list[str]:
    src = config.source
    return assign_split(n_rows, src.holdout_fraction, src.split_seed, src.validation_fraction)


def to_target_split(snapshot: pd.DataFrame, snapshot_hash: str) -> TargetSplit:
    """Train, held-out and validation texts of a snapshot frame (with its `split` column)."""
    texts = snapshot["text"]
    return TargetSplit(*(texts[snapshot["split"] == name].tolist() for name in ("train", "heldout")),
                       snapshot_hash, texts[snapshot["split"] == "validation"].tolist())


def load_target_split(config: DomainConfig) -> TargetSplit:
    """Read the source directly (no store); same texts, split and hash as a `refresh` snapshot."""
    targets = normalise_targets(config, read_source_rows(config))
    snapshot_hash = content_hash(targets)
    targets["split"] = split_rows(config, len(targets))
    return to_target_split(targets, snapshot_hash)
