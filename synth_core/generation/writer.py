"""Stream synthetic rows to Parquet, one row group per batch, committed by an atomic rename.

Readers never see a half-written file: rows go to a temporary sibling that is renamed into place
only after the last batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SYNTHETIC_SCHEMA = pa.schema([
    ("text", pa.string()),
    ("sample_index", pa.int64()),
    ("shard", pa.int32()),
    ("variant", pa.string()),
    ("checkpoint_hash", pa.string()),
    ("context_index", pa.int64()),
    ("seed", pa.int64()),
    ("new_tokens", pa.int32()),
    ("finished", pa.bool_()),
    ("generator", pa.string()),
    # the sampling settings this row was drawn with, as they ran (not as the YAML asked later)
    ("temperature", pa.float64()),
    ("top_p", pa.float64()),
    ("max_new_tokens", pa.int32()),
    ("dtype", pa.string()),
    ("calculator", pa.bool_()),  # the arithmetic steps' results were written by the calculator
])
SAMPLING_COLUMNS = ("temperature", "top_p", "max_new_tokens", "dtype", "calculator")


class SyntheticParquetWriter:
    """Context manager: `write(rows)` appends a batch; leaving the block without error commits the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        self.rows_written = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> SyntheticParquetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.tmp, SYNTHETIC_SCHEMA)
        return self

    def write(self, rows: list[dict]) -> None:
        self._writer.write_table(pa.Table.from_pylist(rows, schema=SYNTHETIC_SCHEMA))
        self.rows_written += len(rows)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()
        if exc_type is None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
