"""`auto` decoding: choose temperature and top-p for a trained prompt on the domain's validation split.

The best setting differs by domain and by prompt (BoolQ was hand-tuned to 0.7, GSM8K runs at 1.0), and a
new domain must not need a hand sweep. Each setting of a small grid samples `generation.auto_rows` rows (`grid_rows`); a
row is valid when it ended by itself (not at the token cap) and passes the domain's checks, and the valid
rows are compared with the validation rows, which are neither trained on nor gated against (the gate scores
against the held-out split; benchmarks against the test split). The comparison is the squared MMD of their
embedder features against every validation row (quality/mmd.py): on a few dozen rows per setting, MAUVE's
own k-means per setting ranked settings worse (test MAUVE of the choice 0.735 and 0.810 against 0.820 and 0.877
by MMD on two gsm8k prompts; docs/BENCHMARKS.md, "A steadier score for the decoding choice"). A setting is eligible when its valid
share is within `auto_validity_slack` of the best share, or when it fills the batch with that slack to spare
(`fill_share`): the gate drops invalid rows before it selects, so validity beyond what fills the batch buys
the published rows nothing, while the cooler settings that maximise it cost diversity (GSM8K at ea805d0:
84% valid at temperature 0.7 / top-p 0.9 against 72% at top-p 1.0, and MAUVE 0.59 on the test split when
the first was taken). Among the eligible settings, the one closest to the validation rows wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from synth_core.config import AUTO, DomainConfig, GenerationConfig
from synth_core.generation.run import Generator, sample_calls
from synth_core.quality.checks import CheckResults, RowChecks
from synth_core.quality.features import FeatureFn
from synth_core.quality.mmd import gaussian_mmd, median_bandwidth

log = logging.getLogger(__name__)
MIN_SCORED_ROWS = 10  # fewer valid rows than this (or validation rows) and a setting is not scored
AUTO_ROWS = (64, 256)  # rows per setting for `auto_rows: auto`: fewest, most
AUTO_ROWS_TOKENS = 64 * 352  # the token cap's cost of 64 rows of GSM8K, the longest seed domain's typical setting
SCORE = "squared MMD, Gaussian kernel of median width, embedder features"  # recorded, and in the fingerprint


@dataclass(frozen=True)
class DecodingChoice:
    temperature: float
    top_p: float
    tried: tuple[dict, ...]  # per setting: temperature, top_p, rows, valid_rate, finished_rate, check_pass_rates,
    # mmd (None: too few valid rows)
    validation_rows: int
    rule: str

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "auto": True, "tried": list(self.tried),
                "validation_rows": self.validation_rows, "rule": self.rule, "score": SCORE}


def fixed_decoding(settings: GenerationConfig) -> dict:
    """The record of a run whose YAML fixes both values (nothing tried)."""
    return {"temperature": settings.temperature, "top_p": settings.top_p, "auto": False}


def decoding_grid(settings: GenerationConfig) -> list[tuple[float, float]]:
    """Every (temperature, top-p) to try: the auto lists for the values set to auto, the fixed value otherwise."""
    temperatures = settings.auto_temperatures if settings.temperature == AUTO else [settings.temperature]
    top_ps = settings.auto_top_ps if settings.top_p == AUTO else [settings.top_p]
    return [(float(t), float(p)) for t in temperatures for p in top_ps]


def fill_share(settings: GenerationConfig) -> float:
    """The share of generated rows that must be valid for the gate to select `num_samples`: one per oversampled
    row, and more where the support cut drops a share of even real-like rows."""
    return 1 / (settings.oversample * (settings.support_quantile or 1.0))


def decoding_fingerprint(config: DomainConfig, checkpoint_hash: str, snapshot_hash: str) -> str:
    """What a choice depends on: the prompt, the data and split, the decoding grid, the checks and the score."""
    data = config.to_dict()
    generation = {k: v for k, v in data["generation"].items() if k not in ("num_samples", "shards")}
    split = {k: data["source"][k] for k in ("holdout_fraction", "validation_fraction", "split_seed")}
    payload = [checkpoint_hash, snapshot_hash, split, generation, data["checks"], data["generator"], SCORE]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def grid_rows(settings: GenerationConfig) -> int:
    """Rows each setting samples. `auto` spends about one budget of tokens at the cap per setting: short rows get
    more of them, because the choice is a noisy read at 64 rows (boolq's six settings lie within ~0.09 test MAUVE of
    each other; on its committed pool the MMD choice at 64 rows averaged 0.859, at 256 rows 0.876 and picked the
    same setting in 38 of 40 draws: docs/BENCHMARKS.md, "Rows per setting"). Needs a resolved token cap."""
    if settings.auto_rows != AUTO:
        return settings.auto_rows
    fewest, most = AUTO_ROWS
    return max(fewest, min(most, AUTO_ROWS_TOKENS // settings.max_new_tokens))


def _sample(generator: Generator) -> tuple[list[str], list[bool]]:
    texts: list[str] = []
    finished: list[bool] = []
    settings = generator.settings  # token limits resolved
    for _, batch, _ in sample_calls(generator, list(range(grid_rows(settings))), settings.batch_size, settings.seed):
        texts += batch.texts
        finished += batch.finished
    return texts, finished


def valid_rows(texts: list[str], finished: list[bool], checked: CheckResults) -> list[bool]:
    """Per row: ended by itself (not at the token cap), not empty, and passing the domain's checks (`checked`:
    the checks run on `texts`)."""
    return [bool(done) and failed is None and bool(t.strip()) for t, done, failed in zip(texts, finished,
                                                                                         checked.failures, strict=True)]


class ValidationDistance:
    """Squared MMD of a setting's valid rows against every validation row (None under `MIN_SCORED_ROWS` rows on
    either side); the validation rows are embedded once for the whole grid."""

    def __init__(self, validation: Sequence[str], embed: FeatureFn):
        self.embed = embed
        self.reference = embed(list(validation)) if len(validation) >= MIN_SCORED_ROWS else None
        self.bandwidth = median_bandwidth(self.reference) if self.reference is not None else None

    def __call__(self, valid: list[str]) -> float | None:
        if self.reference is None or len(valid) < MIN_SCORED_ROWS:
            return None
        return round(gaussian_mmd(self.embed(valid), self.reference, self.bandwidth), 6)


def ranked_settings(tried: list[dict], settings: GenerationConfig) -> tuple[list[dict], str]:
    """The tried settings in the rule's order (the first is the choice), and the rule in words: the eligible ones
    closest to the validation rows first (lowest `mmd`), then the rest by valid share."""
    best_valid, slack, fill = max(r["valid_rate"] for r in tried), settings.auto_validity_slack, fill_share(settings)
    needed = min(best_valid - slack, fill + slack)
    eligible = sorted((r for r in tried if r["valid_rate"] >= needed and r["mmd"] is not None),
                      key=lambda r: r["mmd"])
    rest = sorted((r for r in tried if all(r is not e for e in eligible)), key=lambda r: -r["valid_rate"])
    if eligible:
        return eligible + rest, (f"closest to the validation rows (lowest MMD) among settings with a valid share of "
                                 f"at least {needed:.0%}: within {slack:.0%} of the best ({best_valid:.0%}), or enough "
                                 f"to fill the batch ({fill:.0%}) with {slack:.0%} to spare")
    return rest, (f"scoring needs {MIN_SCORED_ROWS} valid rows and {MIN_SCORED_ROWS} validation rows: the highest "
                  "valid share")


def choose_decoding(generator: Generator, config: DomainConfig, validation: Sequence[str],
                    embed: FeatureFn) -> DecodingChoice:
    """Try every setting of the grid with `generator`; the generator's own settings are restored after.
    With too few validation rows to score (a small domain), the highest valid share decides."""
    settings, checks, distance = config.generation, RowChecks(config.checks), ValidationDistance(validation, embed)
    own = generator.settings
    tried = []
    try:
        for temperature, top_p in decoding_grid(settings):
            generator.settings = replace(own, temperature=temperature, top_p=top_p)
            texts, finished = _sample(generator)
            checked = checks.run(texts)
            valid = [t for t, ok in zip(texts, valid_rows(texts, finished, checked), strict=True) if ok]
            row = {"temperature": temperature, "top_p": top_p, "rows": len(texts),
                   "valid_rate": round(len(valid) / len(texts), 4), "finished_rate": round(sum(finished) / len(texts), 4),
                   "check_pass_rates": {name: round(rate, 4) for name, rate in checked.pass_rates.items()},
                   "mmd": distance(valid)}
            log.info("auto decoding %s: temperature %.2f, top-p %.2f: %.0f%% valid, MMD to validation %s",
                     config.name, temperature, top_p, 100 * row["valid_rate"], row["mmd"])
            tried.append(row)
    finally:
        generator.settings = own
    ranked, rule = ranked_settings(tried, settings)
    chosen = ranked[0]
    rule += f" ({len(validation)} validation rows)"
    log.info("auto decoding %s: chose temperature %.2f, top-p %.2f (%s)", config.name, chosen["temperature"],
             chosen["top_p"], rule)
    return DecodingChoice(chosen["temperature"], chosen["top_p"], tuple(tried), len(validation), rule)


def settle_decoding(generator: Generator, config: DomainConfig, validation: Sequence[str], embed: FeatureFn) -> dict:
    """Set the generator's temperature and top-p: the YAML's values, or for auto the choice on `validation`.
    Returns the decoding record (for a report or a results file)."""
    settings = config.generation
    record = choose_decoding(generator, config, validation, embed).to_dict() if settings.auto_decoding \
        else fixed_decoding(settings)
    generator.settings = replace(generator.settings, temperature=record["temperature"], top_p=record["top_p"])
    return record


def with_decoding(config: DomainConfig, record: dict) -> DomainConfig:
    """The config with the recorded (chosen or fixed) temperature and top-p in place of `auto`."""
    return config.with_overrides({"generation.temperature": record["temperature"],
                                  "generation.top_p": record["top_p"]})
