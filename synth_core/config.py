"""Typed domain configuration, loaded from one YAML file per business domain.

Every section is a dataclass; loading checks every key and value and raises
`ConfigError` naming the file, the dotted key and the bad value, so a broken
domain fails on load rather than hours later on a GPU worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A domain YAML is malformed or holds a bad value."""


def _check(condition: bool, key: str, value: Any, why: str) -> None:
    if not condition:
        raise ValueError(f"{key}={value!r}: {why}")


@dataclass
class SourceConfig:
    kind: Literal["file", "sql"] = field(default="file", metadata={"help": "where the governed targets live"})
    uri: str = field(default="", metadata={"help": "file path (relative to the YAML) or s3:// URI"})
    query: str = field(default="", metadata={"help": "read-only SQL query, for kind=sql"})
    conn_id: str = field(default="", metadata={"help": "Airflow connection id for kind=sql"})
    conn_env: str = field(default="", metadata={"help": "env var with a SQLAlchemy URL for kind=sql"})
    text_template: str = field(default="{text}", metadata={"help": "str.format template over source columns"})
    metadata_columns: list[str] = field(default_factory=list)
    holdout_fraction: float = 0.2
    split_seed: int = 0
    max_rows: int = field(default=0, metadata={"help": "0 keeps all rows"})

    def __post_init__(self) -> None:
        _check(self.kind != "file" or bool(self.uri), "source.uri", self.uri, "required for kind=file")
        _check(self.kind != "sql" or bool(self.query), "source.query", self.query, "required for kind=sql")
        _check(0.0 < self.holdout_fraction < 1.0, "source.holdout_fraction", self.holdout_fraction,
               "must be in (0, 1)")
        _check(self.max_rows >= 0, "source.max_rows", self.max_rows, "must be >= 0")
        _check(bool(re.search(r"\{\w+\}", self.text_template)), "source.text_template", self.text_template,
               "must name at least one {column}")


@dataclass
class ValidationConfig:
    min_rows: int = 10
    max_rows: int = 10_000_000
    text_length: list[int] = field(default_factory=lambda: [1, 100_000])
    unique_text: bool = True
    forbid_patterns: list[str] = field(default_factory=lambda: ["email", "phone", "card_number"])
    extra_expectations: list[dict] = field(default_factory=list,
                                           metadata={"help": "GX expectations by name, e.g. "
                                                     "{type: expect_column_values_to_match_regex, kwargs: {...}}"})

    def __post_init__(self) -> None:
        _check(0 <= self.min_rows <= self.max_rows, "validation.min_rows", self.min_rows, "must be <= max_rows")
        _check(len(self.text_length) == 2 and 0 <= self.text_length[0] <= self.text_length[1],
               "validation.text_length", self.text_length, "must be [min, max] with 0 <= min <= max")


@dataclass
class GeneratorConfig:
    model: str = field(default="embedded:smollm2-135m",
                       metadata={"help": "embedded:smollm2-135m, a local HF model dir, or a hub id"})
    embedder: str = field(default="embedded:all-minilm-l6-v2",
                          metadata={"help": "embedded:all-minilm-l6-v2 or any sentence-transformers model"})
    allow_download: bool = field(default=False, metadata={"help": "permit hub downloads for non-local ids"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})


VARIANTS = ("nsp", "mpk", "mc")


@dataclass
class SoftPromptConfig:
    variant: str = "mc"
    num_tokens: int = 16
    steps: int = 300
    learning_rate: float = 1.0e-3
    weight_decay: float = 0.0
    batch_size: int = 8
    max_length: int = 256
    grad_clip: float = 1.0
    mixture_size: int = field(default=8, metadata={"help": "k basis prompts for the mpk variant"})
    mlp_hidden: int = field(default=256, metadata={"help": "hidden width of the mc variant's MLP"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast for the frozen LM's forward pass"})
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 50
    eval_rows: int = 64
    log_every: int = 10
    warm_start: str = field(default="", metadata={"help": "checkpoint dir (relative to the YAML) to start from"})

    def __post_init__(self) -> None:
        _check(self.variant in VARIANTS, "soft_prompt.variant", self.variant, f"must be one of {VARIANTS}")
        for name in ("num_tokens", "steps", "batch_size", "max_length", "mixture_size", "mlp_hidden",
                     "checkpoint_every", "eval_every", "log_every"):
            _check(getattr(self, name) > 0, f"soft_prompt.{name}", getattr(self, name), "must be > 0")
        _check(self.learning_rate > 0, "soft_prompt.learning_rate", self.learning_rate, "must be > 0")
        _check(self.grad_clip >= 0, "soft_prompt.grad_clip", self.grad_clip, "must be >= 0")


@dataclass
class GenerationConfig:
    num_samples: int = 1000
    shards: int = 1
    batch_size: int = 16
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 256
    context_noise: float = field(default=0.0, metadata={"help": "std of Gaussian noise on context vectors"})
    context_sampling: Literal["round_robin", "random"] = "round_robin"
    seed: int = 0
    baseline_shots: int = field(default=3, metadata={"help": "few-shot examples in the hard-prompt baseline"})
    baseline_instruction: str = field(
        default="Write one new example in the same format and style as the examples below.",
        metadata={"help": "the hard-prompt baseline's natural-language instruction"})

    def __post_init__(self) -> None:
        for name in ("num_samples", "shards", "batch_size", "max_new_tokens"):
            _check(getattr(self, name) > 0, f"generation.{name}", getattr(self, name), "must be > 0")
        _check(self.temperature > 0, "generation.temperature", self.temperature, "must be > 0")
        _check(0 < self.top_p <= 1, "generation.top_p", self.top_p, "must be in (0, 1]")
        _check(self.context_noise >= 0, "generation.context_noise", self.context_noise, "must be >= 0")
        _check(self.baseline_shots >= 0, "generation.baseline_shots", self.baseline_shots, "must be >= 0")


@dataclass
class GateConfig:
    mauve_floor: float = 0.2
    mauve_fraction_of_reference: float = 0.8
    review_band: float = 0.1
    max_leakage_rate: float = 0.01
    max_duplicate_rate: float = 0.5
    mauve_features: Literal["embedder", "llm"] = "embedder"
    mauve_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    mauve_num_buckets: int | str = "auto"
    mauve_scaling_factor: float = 5.0
    max_rows: int = field(default=1000, metadata={"help": "rows per side used for MAUVE"})
    min_rows: int = field(default=20, metadata={"help": "fewer kept rows than this cannot be scored"})
    near_duplicate_similarity: float = 0.95
    leakage_similarity: float = 0.95
    leakage_ngram: int = 8
    leakage_ngram_overlap: float = 0.8
    max_repetition: float = 0.5
    length_quantiles: list[float] = field(default_factory=lambda: [0.0, 1.0])
    length_slack: float = 0.5
    pii_patterns: list[str] = field(default_factory=lambda: ["email", "phone", "card_number"])

    def __post_init__(self) -> None:
        for name in ("mauve_floor", "mauve_fraction_of_reference", "review_band", "max_leakage_rate",
                     "max_duplicate_rate", "near_duplicate_similarity", "leakage_similarity",
                     "leakage_ngram_overlap", "max_repetition"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"gate.{name}", value, "must be in [0, 1]")
        _check(len(self.mauve_seeds) > 0, "gate.mauve_seeds", self.mauve_seeds, "needs at least one seed")
        _check(self.min_rows > 1, "gate.min_rows", self.min_rows, "must be > 1")


@dataclass
class PublishConfig:
    uri: str = field(default="file://published", metadata={"help": "file:// (relative to cwd) or s3://bucket/prefix"})
    quarantine_uri: str = field(default="", metadata={"help": "defaults to <uri>/_quarantine"})
    license: str = "see target data provenance"


@dataclass
class StoreConfig:
    uri: str = field(default="file://artifacts", metadata={"help": "artifact store root, file:// or s3://"})


@dataclass
class DomainConfig:
    name: str
    description: str = ""
    owner: str = "data-platform"
    schedule: str | None = "@weekly"
    tags: list[str] = field(default_factory=list)
    source: SourceConfig = field(default_factory=SourceConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    soft_prompt: SoftPromptConfig = field(default_factory=SoftPromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    base_dir: str = field(default=".", metadata={"help": "set on load: the YAML's folder"})

    def __post_init__(self) -> None:
        _check(bool(re.fullmatch(r"[a-z][a-z0-9_]{0,62}", self.name)), "name", self.name,
               "must be lower-case letters, digits and _ (it becomes a DAG id and an S3 prefix)")

    def resolve_path(self, path: str) -> Path:
        """A path from the YAML, resolved against the YAML's folder unless absolute."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def config_hash(self, *sections: str) -> str:
        """sha256 of the canonical JSON of the config (or of the named sections only)."""
        data = self.to_dict()
        data.pop("base_dir")
        if sections:
            data = {s: data[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def with_overrides(self, overrides: dict[str, Any]) -> DomainConfig:
        """A copy with dotted-key overrides applied and validated, e.g. {"soft_prompt.steps": 5}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"override: unknown key {dotted!r}")
            node[leaf] = value
        return from_dict(data, origin=f"{self.name} (with overrides)")


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{key}={value!r}: expected a mapping")
        return _build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _convert(option, value, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{key}={value!r}: must be one of {list(typing.get_args(tp))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key}={value!r}: expected a list")
        (item_tp,) = typing.get_args(tp)
        return [_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is not None:
            raise ValueError(f"{key}={value!r}: expected null")
        return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is dict and isinstance(value, dict):
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ValueError(f"{key}={value!r}: expected {getattr(tp, '__name__', tp)}")
    return value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(names))})")
    kwargs = {k: _convert(hints[k], v, prefix + k) for k, v in data.items()}
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{prefix}{missing[0]}: required key is missing")
    return cls(**kwargs)


def from_dict(data: Any, origin: str = "<dict>") -> DomainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: top level must be a mapping, got {type(data).__name__}")
    try:
        return _build(DomainConfig, data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def load_domain(path: str | Path) -> DomainConfig:
    """Load and validate one domain YAML; errors name the file, the key and the value."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = {**data, "base_dir": str(path.resolve().parent)}
    return from_dict(data, origin=str(path))
