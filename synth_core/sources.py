"""Governed target samples: read a domain's source, render each row to one training text, split.

The split is deterministic (seeded by `source.split_seed`) so every step and every worker sees the
same train and held-out rows for the same data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_core.config import DomainConfig


@dataclass
class TargetSplit:
    train: list[str]
    heldout: list[str]
    snapshot_hash: str


def read_source_rows(config: DomainConfig) -> pd.DataFrame:
    src = config.source
    if src.kind != "file":
        raise NotImplementedError(f"source.kind={src.kind!r}")
    path = config.resolve_path(src.uri)
    if path.suffix == ".jsonl":
        frame = pd.read_json(path, lines=True)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        frame = pd.read_parquet(path)
    return frame.head(src.max_rows) if src.max_rows else frame


def render_texts(config: DomainConfig, frame: pd.DataFrame) -> list[str]:
    template = config.source.text_template
    try:
        return [template.format(**row) for row in frame.to_dict("records")]
    except KeyError as exc:
        raise ValueError(f"source.text_template={template!r}: column {exc} not in source columns "
                         f"{list(frame.columns)}") from None


def split_texts(texts: list[str], holdout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    order = np.random.default_rng(seed).permutation(len(texts))
    n_holdout = max(1, round(len(texts) * holdout_fraction))
    heldout = sorted(order[:n_holdout].tolist())
    train = sorted(order[n_holdout:].tolist())
    return [texts[i] for i in train], [texts[i] for i in heldout]


def load_target_split(config: DomainConfig) -> TargetSplit:
    texts = render_texts(config, read_source_rows(config))
    train, heldout = split_texts(texts, config.source.holdout_fraction, config.source.split_seed)
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    return TargetSplit(train, heldout, digest)
