"""Typed domain configuration, loaded from one YAML file per business domain.

Every section is a dataclass; loading checks every key and value and raises
`ConfigError` naming the file, the dotted key and the bad value, so a broken
domain fails on load rather than hours later on a GPU worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import string
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from synth_core.pii_patterns import check_pattern_spec


class ConfigError(ValueError):
    """A domain YAML is malformed or holds a bad value."""


AUTO = "auto"  # a setting the pipeline chooses from the data (decoding, token limits)


def _check(condition: bool, key: str, value: Any, why: str) -> None:
    if not condition:
        raise ValueError(f"{key}={value!r}: {why}")


def _check_auto_or_positive(key: str, value: Any) -> None:
    _check(value == AUTO or value > 0, key, value, "must be auto or > 0")


def _check_pattern_specs(key: str, specs: list[str]) -> None:
    for i, spec in enumerate(specs):
        try:
            check_pattern_spec(spec)
        except ValueError as exc:
            raise ValueError(f"{key}[{i}]={exc}") from None


_READ_ONLY_SQL = re.compile(r"\s*(select|with)\b[^;]*;?\s*", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SNAPSHOT_COLUMNS = ("text", "split")


@dataclass
class SourceConfig:
    kind: Literal["file", "sql"] = field(default="file", metadata={"help": "where the governed targets live"})
    uri: str = field(default="", metadata={"help": "file path (relative to the YAML) or s3:// URI"})
    format: Literal["auto", "jsonl", "csv", "parquet"] = field(
        default="auto", metadata={"help": "file format; auto picks it from the file's suffix"})
    query: str = field(default="", metadata={
        "help": "one read-only SELECT (or WITH) statement, for kind=sql"})
    conn_id: str = field(default="", metadata={"help": "Airflow connection id: the database (kind=sql) or "
                                                     "the S3 connection for an s3:// file (optional)"})
    conn_env: str = field(default="", metadata={
        "help": "name of an env var holding a SQLAlchemy URL (kind=sql)"})
    text_template: str = field(default="{text}", metadata={"help": "str.format template over source columns"})
    metadata_columns: list[str] = field(default_factory=list,
                                        metadata={"help": "source columns kept beside the text in the snapshot"})
    holdout_fraction: float = field(default=0.2, metadata={
        "help": "share of target rows held out from training, for the gate's comparison"})
    validation_fraction: float = field(default=0.1, metadata={
        "help": "share of target rows kept from training and from the gate, on which generation.temperature/top_p "
                "'auto' choose the decoding"})
    split_seed: int = field(default=0, metadata={
        "help": "seed of the train/held-out split (same seed and rows, same split)"})
    max_rows: int = field(default=0, metadata={"help": "0 keeps all rows"})

    def __post_init__(self) -> None:
        _check(self.kind != "file" or bool(self.uri), "source.uri", self.uri, "required for kind=file")
        if self.kind == "sql":
            _check(bool(_READ_ONLY_SQL.fullmatch(self.query)), "source.query", self.query,
                   "must be one read-only SELECT or WITH statement")
            _check(bool(self.conn_id) != bool(self.conn_env), "source.conn_id", self.conn_id,
                   "kind=sql needs exactly one of source.conn_id or source.conn_env")
        _check(not self.conn_env or bool(_ENV_NAME.fullmatch(self.conn_env)), "source.conn_env", self.conn_env,
               "must name an environment variable (the URL itself never goes in YAML)")
        _check(0.0 < self.holdout_fraction < 1.0, "source.holdout_fraction", self.holdout_fraction,
               "must be in (0, 1)")
        _check(0.0 <= self.validation_fraction and self.holdout_fraction + self.validation_fraction < 1.0,
               "source.validation_fraction", self.validation_fraction,
               "must be >= 0, and below 1 - source.holdout_fraction (rows must be left to train on)")
        _check(self.max_rows >= 0, "source.max_rows", self.max_rows, "must be >= 0")
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.text_template) if name is not None]
        except ValueError as exc:
            raise ValueError(f"source.text_template={self.text_template!r}: not a valid template ({exc}); "
                             "write literal braces as {{ and }}") from None
        _check(bool(fields), "source.text_template", self.text_template, "must name at least one {column}")
        _check(all(re.fullmatch(r"\w+", name) for name in fields), "source.text_template", self.text_template,
               "every {field} must be a plain column name, e.g. {question}")
        reserved = sorted(set(self.metadata_columns) & set(SNAPSHOT_COLUMNS))
        _check(not reserved, "source.metadata_columns", self.metadata_columns,
               f"{reserved} are snapshot columns and cannot be metadata")


EXPECTATION_TARGETS = ("targets", "synthetic", "both")


@dataclass
class ValidationConfig:
    min_rows: int = field(default=10, metadata={
        "help": "fewest rows a target snapshot or an approved synthetic batch may have"})
    max_rows: int = field(default=10_000_000, metadata={
        "help": "most rows a target snapshot or an approved synthetic batch may have"})
    text_length: list[int] = field(default_factory=lambda: [1, 100_000], metadata={
        "help": "[min, max] characters per text"})
    unique_text: bool = field(default=True, metadata={"help": "every text must be distinct"})
    forbid_patterns: list[str] = field(
        default_factory=lambda: ["email", "phone", "card_number"],
        metadata={"help": "PII pattern names (email, phone, card_number, ...) or 'regex:<pattern>'"})
    extra_expectations: list[dict] = field(
        default_factory=list,
        metadata={"help": "GX expectations by name, e.g. {type: expect_column_values_to_match_regex, "
                          "kwargs: {column: text, regex: ...}, on: targets|synthetic|both (default both)}"})

    def __post_init__(self) -> None:
        _check(0 <= self.min_rows <= self.max_rows, "validation.min_rows", self.min_rows, "must be <= max_rows")
        _check(len(self.text_length) == 2 and 0 <= self.text_length[0] <= self.text_length[1],
               "validation.text_length", self.text_length, "must be [min, max] with 0 <= min <= max")
        _check_pattern_specs("validation.forbid_patterns", self.forbid_patterns)
        for i, spec in enumerate(self.extra_expectations):
            key = f"validation.extra_expectations[{i}]"
            _check(set(spec) <= {"type", "kwargs", "on"}, key, spec, "allowed keys are type, kwargs, on")
            _check(str(spec.get("type", "")).startswith("expect_"), f"{key}.type", spec.get("type"),
                   "must name a GX expectation, e.g. expect_column_values_to_match_regex")
            _check(isinstance(spec.get("kwargs", {}), dict), f"{key}.kwargs", spec.get("kwargs"),
                   "must be a mapping")
            _check(spec.get("on", "both") in EXPECTATION_TARGETS, f"{key}.on", spec.get("on"),
                   f"must be one of {list(EXPECTATION_TARGETS)}")


@dataclass
class GeneratorConfig:
    model: str = field(default="embedded:smollm2-135m",
                       metadata={"help": "embedded:smollm2-135m, a local HF model dir, or a hub id"})
    embedder: str = field(default="embedded:all-minilm-l6-v2",
                          metadata={"help": "embedded:all-minilm-l6-v2 or any sentence-transformers model"})
    allow_download: bool = field(default=False, metadata={"help": "permit hub downloads for non-local ids"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(default="auto", metadata={
        "help": "dtype of the frozen LM's weights; auto: bfloat16 on a GPU with native bf16, else float32"})


VARIANTS = ("nsp", "mpk", "mc")


@dataclass
class SoftPromptConfig:
    variant: str = field(default="mc", metadata={
        "help": "nsp (one prompt), mpk (mixture of k prompts) or mc (MLP on the context vector)"})
    num_tokens: int = field(default=16, metadata={"help": "soft tokens in the prompt prefix"})
    steps: int = field(default=300, metadata={"help": "optimiser steps per training run"})
    learning_rate: float = field(default=1.0e-3, metadata={
        "help": "AdamW learning rate of the soft-prompt parameters"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    batch_size: int = field(default=8, metadata={"help": "target rows per training step"})
    max_length: int | Literal["auto"] = field(default=AUTO, metadata={
        "help": "tokens per target row; longer rows are trained on their beginning only; auto: enough for "
                "99.5% of the train rows whole (token_limits.py)"})
    loss_weighting: Literal["token", "row"] = field(default="row", metadata={
        "help": "token: minimise the mean NLL over a batch's target tokens (a long row weighs more); row: the mean "
                "over rows of each row's mean token NLL (every target row weighs the same)"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clip (0 turns it off)"})
    mixture_size: int = field(default=8, metadata={"help": "k basis prompts for the mpk variant"})
    mlp_hidden: int = field(default=256, metadata={"help": "hidden width of the mc variant's MLP"})
    bf16: bool = field(default=True, metadata={
        "help": "bf16 autocast for the frozen LM's forward pass where the device runs bf16 natively (float32 "
                "elsewhere); the quality benchmark's figures were measured with it"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and batch order"})
    checkpoint_every: int = field(default=50, metadata={
        "help": "steps between checkpoints (training resumes from the last one)"})
    eval_every: int = field(default=50, metadata={"help": "steps between held-out loss evaluations"})
    eval_rows: int = field(default=64, metadata={"help": "held-out rows in each evaluation"})
    log_every: int = field(default=10, metadata={"help": "steps between progress log lines"})
    warm_start: str = field(default="", metadata={
        "help": "checkpoint dir (relative to the YAML) to start from"})

    def __post_init__(self) -> None:
        _check(self.variant in VARIANTS, "soft_prompt.variant", self.variant, f"must be one of {VARIANTS}")
        for name in ("num_tokens", "steps", "batch_size", "mixture_size", "mlp_hidden",
                     "checkpoint_every", "eval_every", "log_every"):
            _check(getattr(self, name) > 0, f"soft_prompt.{name}", getattr(self, name), "must be > 0")
        _check_auto_or_positive("soft_prompt.max_length", self.max_length)
        _check(self.learning_rate > 0, "soft_prompt.learning_rate", self.learning_rate, "must be > 0")
        _check(self.grad_clip >= 0, "soft_prompt.grad_clip", self.grad_clip, "must be >= 0")



@dataclass
class GenerationConfig:
    num_samples: int = field(default=1000, metadata={"help": "synthetic rows per run, over all shards"})
    shards: int = field(default=1, metadata={
        "help": "generate tasks the batch is split over (Airflow dynamic task mapping)"})
    batch_size: int = field(default=16, metadata={"help": "rows decoding at once; a row that ends makes room for the next"})
    temperature: float | Literal["auto"] = field(default=AUTO, metadata={
        "help": "softmax temperature of sampling; auto: the best of auto_temperatures on the validation split"})
    top_p: float | Literal["auto"] = field(default=AUTO, metadata={
        "help": "nucleus sampling mass; auto: the best of auto_top_ps on the validation split"})
    auto_temperatures: list[float] = field(default_factory=lambda: [0.7, 0.85, 1.0], metadata={
        "help": "temperatures tried when temperature is auto"})
    auto_top_ps: list[float] = field(default_factory=lambda: [0.9, 1.0], metadata={
        "help": "top-p values tried when top_p is auto"})
    auto_rows: int | Literal["auto"] = field(default=AUTO, metadata={
        "help": "rows sampled per tried setting; each is scored against the validation split; auto: 64, more for "
                "short rows (as many as 64 rows at a 352-token cap cost, up to 256)"})
    auto_validity_slack: float = field(default=0.05, metadata={
        "help": "auto keeps the best MAUVE among settings whose valid-row share is within this of the best share, "
                "or above the share that fills the batch (1 / (oversample x support_quantile)) by this much"})
    oversample: float = field(default=2.0, metadata={
        "help": "rows generated per requested row; the gate drops invalid and off-support rows and selects "
                "num_samples of the rest to match the train split"})
    support_quantile: float | None = field(default=0.95, metadata={
        "help": "a row is off the targets' support when its nearest train row is farther than this quantile of "
                "train rows' own nearest-neighbour distances (null: no support cut)"})
    max_new_tokens: int | Literal["auto"] = field(default=AUTO, metadata={
        "help": "token cap per row; a row that reaches it is cut off (and dropped by the gate); auto: enough "
                "for 99.5% of the train rows whole (token_limits.py)"})
    context_noise: float = field(default=0.0, metadata={"help": "std of Gaussian noise on context vectors"})
    context_sampling: Literal["round_robin", "random"] = field(default="round_robin", metadata={
        "help": "which target's context vector each row uses: round_robin or random"})
    seed: int = field(default=0, metadata={
        "help": "sampling seed (same seed, checkpoint and settings: same rows)"})
    baseline_shots: int = field(default=3, metadata={"help": "few-shot examples in the hard-prompt baseline"})
    baseline_style: Literal["plain", "chat"] = field(
        default="plain", metadata={"help": "plain few-shot continuation, or the model's chat template"})
    bf16: bool = field(default=True, metadata={
        "help": "sample with the frozen LM cast to bfloat16 where the device runs it natively (float32 elsewhere)"})
    baseline_instruction: str = field(
        default="Write one new example in the same format and style as the examples below.",
        metadata={"help": "the hard-prompt baseline's natural-language instruction"})

    def __post_init__(self) -> None:
        for name in ("num_samples", "shards", "batch_size"):
            _check(getattr(self, name) > 0, f"generation.{name}", getattr(self, name), "must be > 0")
        _check_auto_or_positive("generation.auto_rows", self.auto_rows)
        _check_auto_or_positive("generation.max_new_tokens", self.max_new_tokens)
        for key, high in (("temperature", 2), ("top_p", 1)):
            value = getattr(self, key)
            _check(value == AUTO or 0 < value <= high, f"generation.{key}", value, f"must be auto or in (0, {high}]")
        for key, high in (("auto_temperatures", 2), ("auto_top_ps", 1)):
            values = getattr(self, key)
            _check(bool(values) and all(0 < v <= high for v in values), f"generation.{key}", values,
                   f"must be a non-empty list of values in (0, {high}]")
        _check(0 <= self.auto_validity_slack <= 1, "generation.auto_validity_slack", self.auto_validity_slack,
               "must be in [0, 1]")
        _check(1 <= self.oversample <= 10, "generation.oversample", self.oversample, "must be in [1, 10]")
        _check(self.support_quantile is None or 0 < self.support_quantile <= 1, "generation.support_quantile",
               self.support_quantile, "must be null or in (0, 1]")
        _check(self.context_noise >= 0, "generation.context_noise", self.context_noise, "must be >= 0")
        _check(self.baseline_shots >= 0, "generation.baseline_shots", self.baseline_shots, "must be >= 0")

    @property
    def candidate_rows(self) -> int:
        """Rows generated for a batch of num_samples: the gate selects num_samples of them."""
        return math.ceil(self.num_samples * self.oversample)

    @property
    def auto_decoding(self) -> bool:
        return AUTO in (self.temperature, self.top_p)


@dataclass
class GateConfig:
    mauve_floor: float = field(default=0.2, metadata={"help": "lowest MAUVE bar, whatever the reference"})
    mauve_fraction_of_reference: float = field(default=0.8, metadata={
        "help": "the bar as a fraction of the real-vs-real MAUVE reference"})
    review_band: float = field(default=0.1, metadata={
        "help": "how far below the bar a batch goes to human review instead of failing"})
    leakage_margin: float = field(default=0.02, metadata={
        "help": "how far the batch's near-copy rate may exceed real held-out rows' rate against the same "
                "train rows: fail when the interval's lower bound exceeds it, review when the point estimate does"})
    leakage_confidence: float = field(default=0.95, metadata={
        "help": "two-sided level of the leakage rates' intervals (Wilson; Newcombe for their difference)"})
    max_duplicate_rate: float = field(default=0.5, metadata={
        "help": "share of exact or near duplicate rows above which the batch fails"})
    mauve_features: Literal["embedder", "llm"] = field(default="embedder", metadata={
        "help": "features MAUVE compares: embedder (sentence embeddings) or llm (the generator's hidden "
                "states)"})
    mauve_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={
        "help": "k-means seeds; MAUVE is the mean over them"})
    mauve_num_buckets: int | str = field(default="auto", metadata={
        "help": "k-means clusters, or auto (one per ten rows)"})
    mauve_scaling_factor: float = field(default=5.0, metadata={
        "help": "mauve-text's divergence scaling factor"})
    mauve_resamples: int = field(default=50, metadata={
        "help": "paired half-samples of rows for the intervals of MAUVE, the reference and the margin over the bar"})
    mauve_confidence: float = field(default=0.9, metadata={
        "help": "two-sided level of those intervals: pass when the margin's interval clears the bar, fail when "
                "it lies more than review_band below it, review in between"})
    max_rows: int = field(default=1000, metadata={"help": "rows per side used for MAUVE"})
    min_rows: int = field(default=20, metadata={"help": "fewer kept rows than this cannot be scored"})
    near_duplicate_similarity: float = field(default=0.95, metadata={
        "help": "cosine similarity at which two synthetic rows count as near duplicates"})
    leakage_similarity: float = field(default=0.95, metadata={
        "help": "cosine similarity to a target row at which a synthetic row counts as a near copy"})
    leakage_ngram: int = field(default=8, metadata={"help": "word n-gram length of the lexical copy check"})
    leakage_ngram_overlap: float = field(default=0.8, metadata={
        "help": "share of a row's n-grams found in target rows at which it counts as a copy"})
    max_repetition: float = field(default=0.5, metadata={
        "help": "share of repeated word trigrams above which a row is dropped as degenerate"})
    length_quantiles: list[float] = field(default_factory=lambda: [0.0, 1.0], metadata={
        "help": "[low, high] quantiles of target lengths that bound a row's length"})
    length_slack: float = field(default=0.5, metadata={"help": "relative widening of those length bounds"})
    pii_patterns: list[str] = field(
        default_factory=lambda: ["email", "phone", "card_number"],
        metadata={"help": "PII pattern names (as in validation.forbid_patterns) or 'regex:<pattern>'"})
    max_length_ks: float = field(default=0.3, metadata={
        "help": "KS statistic of lengths (synthetic vs held-out) above which a human reviews the batch"})
    sample_seed: int = field(default=0, metadata={"help": "seed for drawing the equal-size MAUVE samples"})
    drop_unfinished: bool = field(default=True, metadata={
        "help": "drop rows cut at generation.max_new_tokens (no end of sequence) before scoring; they are "
                "never published"})
    support_k: int = field(default=5, metadata={
        "help": "k of the k-NN precision (realism) and recall (coverage) against held-out rows"})
    min_precision: float | None = field(default=None, metadata={
        "help": "k-NN precision below which a human reviews the batch (null: reported, not judged)"})
    min_valid_rate: float | None = field(default=0.5, metadata={
        "help": "share of generated rows passing every declared check (of those that reached the checks) "
                "below which the batch fails (null: reported, not judged)"})
    min_recall: float | None = field(default=None, metadata={
        "help": "k-NN recall below which a human reviews the batch, e.g. a batch copying one mode (null: "
                "reported, not judged)"})

    def __post_init__(self) -> None:
        for name in ("mauve_floor", "mauve_fraction_of_reference", "review_band", "leakage_margin",
                     "max_duplicate_rate", "near_duplicate_similarity", "leakage_similarity",
                     "leakage_ngram_overlap", "max_repetition", "max_length_ks"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"gate.{name}", value, "must be in [0, 1]")
        for name in ("leakage_confidence", "mauve_confidence"):
            _check(0.5 <= getattr(self, name) < 1.0, f"gate.{name}", getattr(self, name), "must be in [0.5, 1)")
        _check(self.mauve_resamples >= 10, "gate.mauve_resamples", self.mauve_resamples,
               "must be at least 10 (an interval needs resamples)")
        _check(len(self.mauve_seeds) > 0, "gate.mauve_seeds", self.mauve_seeds, "needs at least one seed")
        _check(self.min_rows >= 4, "gate.min_rows", self.min_rows, "must be >= 4 (the intervals score half-samples)")
        _check(self.max_rows >= self.min_rows, "gate.max_rows", self.max_rows, "must be >= gate.min_rows")
        _check(self.mauve_num_buckets == "auto" or (isinstance(self.mauve_num_buckets, int)
                                                    and 2 <= self.mauve_num_buckets <= self.min_rows),
               "gate.mauve_num_buckets", self.mauve_num_buckets, "must be 'auto' or an int in [2, gate.min_rows]")
        _check(self.mauve_scaling_factor > 0, "gate.mauve_scaling_factor", self.mauve_scaling_factor, "must be > 0")
        _check(self.leakage_ngram > 0, "gate.leakage_ngram", self.leakage_ngram, "must be > 0")
        _check(self.support_k > 0, "gate.support_k", self.support_k, "must be > 0")
        for name in ("min_precision", "min_recall", "min_valid_rate"):
            value = getattr(self, name)
            _check(value is None or 0.0 <= value <= 1.0, f"gate.{name}", value, "must be null or in [0, 1]")
        low_high = self.length_quantiles
        _check(len(low_high) == 2 and 0.0 <= low_high[0] <= low_high[1] <= 1.0, "gate.length_quantiles", low_high,
               "must be [low, high] with 0 <= low <= high <= 1")
        _check(self.length_slack >= 0.0, "gate.length_slack", self.length_slack, "must be >= 0")
        _check_pattern_specs("gate.pii_patterns", self.pii_patterns)


def _check_store_uri(key: str, uri: str) -> None:
    _check(uri.startswith(("file://", "s3://")), key, uri, "must start with file:// or s3://")
    _check(".." not in uri.split("://", 1)[-1].split("/"), key, uri, "must not contain '..' path segments")


@dataclass
class PublishConfig:
    uri: str = field(default="file://published", metadata={
        "help": "file:// (relative to cwd) or s3://bucket/prefix"})
    quarantine_uri: str = field(default="", metadata={"help": "defaults to <uri>/_quarantine"})
    conn_id: str = field(default="", metadata={
        "help": "Airflow aws connection, read by the Amazon provider's S3Hook (keys, region_name, endpoint_url, "
                "role_arn); empty uses boto3's normal chain"})
    license: str = field(default="see target data provenance", metadata={
        "help": "license line of the dataset card (the target data's license applies to derivatives)"})
    license_id: str = field(default="other", metadata={
        "help": "the dataset card's license identifier, as the Hugging Face Hub lists them (e.g. cc-by-sa-3.0, mit)"})

    def __post_init__(self) -> None:
        _check_store_uri("publish.uri", self.uri)
        _check(bool(re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", self.license_id)), "publish.license_id", self.license_id,
               "must be a Hugging Face license identifier such as cc-by-4.0, mit or other")
        if self.quarantine_uri:
            _check_store_uri("publish.quarantine_uri", self.quarantine_uri)

    @property
    def quarantine(self) -> str:
        return self.quarantine_uri or self.uri.rstrip("/") + "/_quarantine"


@dataclass
class StoreConfig:
    uri: str = field(default="file://artifacts", metadata={"help": "artifact store root, file:// or s3://"})
    conn_id: str = field(default="", metadata={
        "help": "Airflow aws connection, read by the Amazon provider's S3Hook (keys, region_name, endpoint_url, "
                "role_arn); empty uses boto3's normal chain"})

    def __post_init__(self) -> None:
        _check_store_uri("store.uri", self.uri)


@dataclass
class CheckConfig:
    """One named check every generated row must pass (quality/checks.py); real targets must pass it too."""

    name: str = field(metadata={"help": "the check's name, as reports and dropped rows show it"})
    kind: Literal["regex", "arithmetic", "python"] = field(metadata={
        "help": "regex: the pattern must (or must not) occur; arithmetic: every 'a op b = c' step holds; "
                "python: the row (or its part) parses as Python"})
    calculator: bool = field(default=True, metadata={
        "help": "arithmetic: the generator writes each step's result itself as it samples, so the steps hold "
                "(false: the model's own numbers, checked and dropped when wrong); other kinds ignore it"})
    pattern: str = field(default="", metadata={"help": "regex: a Python regular expression, searched in the row"})
    must_match: bool = field(default=True, metadata={"help": "regex: false means the pattern must not occur"})
    part: str = field(default="", metadata={
        "help": "python: a regex whose first group is the code to check (empty: the whole row)"})
    run_asserts: bool = field(default=False, metadata={
        "help": "python: the code must also run to the end (its asserts pass) in an isolated, "
                "resource-limited interpreter"})

    def validate(self, key: str) -> None:
        """Errors name the check by position and name, e.g. `checks[1] (final_answer).pattern='(': ...`."""
        key = f"{key} ({self.name})"
        _check(bool(re.fullmatch(r"[a-z][a-z0-9_]{0,62}", self.name)), f"{key}.name", self.name,
               "must be lower-case letters, digits and _")
        for attr in ("pattern", "part"):
            try:
                compiled = re.compile(getattr(self, attr))
            except re.error as exc:
                raise ValueError(f"{key}.{attr}={getattr(self, attr)!r}: not a valid regex: {exc}") from None
            if attr == "part" and self.part:
                _check(compiled.groups >= 1, f"{key}.part", self.part, "needs a group: the code to check")
        _check(self.kind != "regex" or bool(self.pattern), f"{key}.pattern", self.pattern,
               "a regex check needs a pattern")
        _check(self.kind == "regex" or not self.pattern, f"{key}.pattern", self.pattern,
               f"only regex checks take a pattern (this one is {self.kind})")
        _check(self.kind == "python" or not (self.part or self.run_asserts), f"{key}.part", self.part,
               f"only python checks take part/run_asserts (this one is {self.kind})")


@dataclass
class DomainConfig:
    name: str = field(metadata={
        "help": "domain name: lower-case letters, digits and _; the DAG id is synth__<name>"})
    description: str = field(default="", metadata={
        "help": "one line on what the domain's texts are (DAG doc and dataset card)"})
    owner: str = field(default="data-platform", metadata={"help": "Airflow owner of the DAG"})
    schedule: str | None = field(default="@weekly", metadata={
        "help": "cron expression, @daily, @weekly, or null for manual runs"})
    tags: list[str] = field(default_factory=list, metadata={"help": "extra Airflow tags"})
    source: SourceConfig = field(default_factory=SourceConfig, metadata={
        "help": "where the governed target rows come from"})
    validation: ValidationConfig = field(default_factory=ValidationConfig, metadata={
        "help": "Great Expectations checks on targets and on the approved synthetic batch"})
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, metadata={
        "help": "the frozen LM and the sentence embedder"})
    soft_prompt: SoftPromptConfig = field(default_factory=SoftPromptConfig, metadata={
        "help": "SoftSRV soft-prompt training"})
    generation: GenerationConfig = field(default_factory=GenerationConfig, metadata={
        "help": "sampling the synthetic batch"})
    checks: list[CheckConfig] = field(default_factory=list, metadata={
        "help": "named checks every generated row must pass (regex, arithmetic, python); rows that fail are "
                "dropped, and at least 90% of the real targets must pass each"})
    gate: GateConfig = field(default_factory=GateConfig, metadata={
        "help": "filters and the MAUVE / leakage gate"})
    publish: PublishConfig = field(default_factory=PublishConfig, metadata={
        "help": "where approved (and quarantined) batches go"})
    store: StoreConfig = field(default_factory=StoreConfig, metadata={
        "help": "the run-scoped artifact store"})
    base_dir: str = field(default=".", metadata={"help": "set on load: the YAML's folder"})

    def __post_init__(self) -> None:
        _check(bool(re.fullmatch(r"[a-z][a-z0-9_]{0,62}", self.name)), "name", self.name,
               "must be lower-case letters, digits and _ (it becomes a DAG id and an S3 prefix)")
        for i, check in enumerate(self.checks):
            check.validate(f"checks[{i}]")
        names = [c.name for c in self.checks]
        _check(len(set(names)) == len(names), "checks", names, "check names must be unique")

    def num_samples_floor(self) -> tuple[int, str, str]:
        """The fewest rows a run may ask for: (rows, the setting that needs them, why). Below it the batch
        could never publish, so runs asking for fewer are refused before any work (and in the trigger form)."""
        return max((self.validation.min_rows, "validation.min_rows",
                    "the approved batch could never pass the synthetic validation that runs before publishing"),
                   (self.gate.min_rows, "gate.min_rows", "the gate could never score the batch"))

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


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value` from a command line, the value read as YAML (0.7 -> float, true -> bool)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise ValueError(f"{text!r}: expected section.key=value, e.g. generation.temperature=0.7")
    return key.strip(), yaml.safe_load(value)


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
        raise ValueError(f"{key}={value!r}: " + "; or ".join(e.split(": ", 1)[-1] for e in errors))
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


# Keys that older domain files may still carry, with what replaced them.
REPLACED_KEYS = {
    "gate.max_leakage_rate": "leakage is now judged against the near-copy rate of real held-out rows; "
                             "remove the key (gate.leakage_margin sets the allowed excess, default 0.02)",
    "publish.max_attempts": "a failed publish is retried by its Airflow task (transport errors by botocore); "
                            "remove the key",
    "publish.retry_backoff_s": "a failed publish is retried by its Airflow task with exponential back-off; "
                               "remove the key",
}


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        replaced = REPLACED_KEYS.get(prefix + unknown[0])
        if replaced:
            raise ValueError(f"{prefix}{unknown[0]}: no longer a setting; {replaced}")
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
