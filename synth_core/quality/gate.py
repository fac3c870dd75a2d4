"""The quality gate: filter a synthetic batch, score it against held-out real rows, decide.

One public function, `run_gate`, with flat keyword arguments. Features come from an injected
function when given (tests pass precomputed or cached ones), else from the configured models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from synth_core.config import AUTO, DomainConfig, GateConfig
from synth_core.generation.writer import SAMPLING_COLUMNS
from synth_core.quality.checks import RowChecks
from synth_core.quality.decision import decide, mauve_metrics
from synth_core.quality.features import CachedFeatures, FeatureFn, embedder_features, llm_features, unit_rows
from synth_core.quality.filters import DroppedRow, FilterResult, count_by_reason, filter_batch
from synth_core.quality.leakage import CalibratedLeakage, calibrated_leakage, leakage_metrics
from synth_core.quality.mauve_score import CalibratedMauve, calibrated_mauve
from synth_core.quality.report import GateReport, write_report
from synth_core.quality.selection import select_rows
from synth_core.quality.shape import ShapeMetrics, length_histogram, shape_metrics


class GateInputError(ValueError):
    """The gate cannot judge these inputs (empty batch, missing column, too few target rows to score against).

    A batch with too few rows left to score is not an input error: it fails, with the reason."""


def sample_rows(texts: Sequence[str], size: int, seed: int, stream: int) -> list[str]:
    """`size` rows drawn without replacement, in their original order; same seed, same rows."""
    chosen = np.random.default_rng([seed, stream]).choice(len(texts), size=size, replace=False)
    return [texts[i] for i in sorted(chosen)]


def _check_inputs(config: DomainConfig, synthetic_texts: Sequence[str], target_train: Sequence[str],
                  target_heldout: Sequence[str]) -> None:
    if len(synthetic_texts) == 0:
        raise GateInputError("empty batch: there are no synthetic rows to gate")
    for name, rows in (("target train", target_train), ("target held-out", target_heldout)):
        if len(rows) < config.gate.min_rows:
            raise GateInputError(f"the {name} split has {len(rows)} rows; gate.min_rows={config.gate.min_rows} "
                                 "are needed to score against it")


class UnscorableFeatures(ValueError):
    """The features cannot be scored (NaN, infinite or all rows identical); the batch fails with this reason."""


def _finite(name: str, features: np.ndarray) -> np.ndarray:
    if not np.isfinite(features).all():
        raise UnscorableFeatures(f"the {name} rows' MAUVE features contain NaN or infinite values "
                                 "(check the feature model); MAUVE was not scored")
    return features


def _score(kept: list[str], target_train: Sequence[str], target_heldout: Sequence[str], gate: GateConfig,
           embed: FeatureFn, mauve_features: FeatureFn) -> tuple[CalibratedMauve, dict[str, ShapeMetrics], dict]:
    """Calibrated MAUVE and shape metrics on equal-size samples of synthetic, train and held-out rows."""
    size = min(gate.max_rows, len(kept), len(target_train), len(target_heldout))
    synthetic = sample_rows(kept, size, gate.sample_seed, 0)
    train = sample_rows(target_train, size, gate.sample_seed, 1)
    heldout = sample_rows(target_heldout, size, gate.sample_seed, 2)
    features = {name: _finite(name, mauve_features(rows))
                for name, rows in (("synthetic", synthetic), ("target train", train), ("held-out", heldout))}
    if np.ptp(features["synthetic"], axis=0).max() == 0:
        raise UnscorableFeatures(f"all {size} sampled synthetic rows have identical MAUVE features; "
                                 "MAUVE was not scored")
    mauve = calibrated_mauve(*features.values(), num_buckets=gate.mauve_num_buckets,
                             scaling_factor=gate.mauve_scaling_factor, seeds=tuple(gate.mauve_seeds),
                             resamples=gate.mauve_resamples, confidence=gate.mauve_confidence,
                             bootstrap_seed=gate.sample_seed)
    heldout_features = unit_rows(embed(heldout))
    shape = {name: shape_metrics(rows, unit_rows(embed(rows)), heldout, heldout_features, gate.support_k)
             for name, rows in (("synthetic", synthetic), ("real_train", train))}
    return mauve, shape, length_histogram({"synthetic": synthetic, "real held-out": heldout})


def _too_few_rows(config: DomainConfig, kept: int, rows: int, dropped: dict[str, int]) -> str:
    nonzero = {reason: n for reason, n in dropped.items() if n}
    cap = config.generation.max_new_tokens
    advice = ("which holds 99.5% of the train rows whole: the cut rows ran on past the targets' length" if cap == AUTO
              else "raise it")
    cut_off = (f"; {dropped['unfinished']} rows were cut at generation.max_new_tokens={cap}, {advice}"
               if dropped["unfinished"] else "")
    return (f"MAUVE not scored: only {kept} of {rows} synthetic rows survived the filters (dropped: {nonzero}); "
            f"gate.min_rows={config.gate.min_rows} are needed to score it" + cut_off)


def filter_and_measure_leakage(texts: list[str], target_train: Sequence[str], target_heldout: Sequence[str],
                               gate: GateConfig, embed: FeatureFn, finished: Sequence[bool] | None = None,
                               checks: RowChecks | None = None) -> tuple[FilterResult, CalibratedLeakage]:
    """The filters (every copy of any target row removed), then the batch's near-copy rate of train rows
    beside real held-out rows' rate, on the rows that reached the leakage check."""
    filtered = filter_batch(texts, [*target_train, *target_heldout], gate, embed, finished, checks)
    screened = [texts[i] for i in filtered.screened]
    leakage = calibrated_leakage(screened, unit_rows(embed(screened)), target_train,
                                 unit_rows(embed(list(target_train))), target_heldout,
                                 unit_rows(embed(list(target_heldout))), gate)
    return filtered, leakage


def run_gate(config: DomainConfig, synthetic_texts: Sequence[str], target_train: Sequence[str],
             target_heldout: Sequence[str], *, embed: FeatureFn | None = None,
             mauve_features: FeatureFn | None = None, identities: dict | None = None,
             out_dir: Path | None = None, finished: Sequence[bool] | None = None,
             decoding: dict | None = None) -> GateReport:
    """Gate one synthetic batch and, if `out_dir` is given, write the report there.

    finished: per row, whether it ended by end-of-sequence/stop (the batch's `finished` column); rows
        cut at the token cap are dropped when gate.drop_unfinished (the default). None: not recorded.
    decoding: the run's decoding record (temperature, top-p, and for auto every setting tried), shown as given.

    Of the rows that pass the filters, generation.num_samples are selected (quality/selection.py): rows off
    the train rows' support are dropped, the rest drawn to match the train rows' clusters.

    embed: texts -> sentence embeddings, for the near-duplicate and leakage checks and the shape
        metrics (default: the configured embedder); with gate.mauve_features="embedder" MAUVE uses
        it too. mauve_features: texts -> MAUVE features, used when gate.mauve_features="llm"
        (default: the frozen LM's mean-pooled last hidden state). identities: recorded as given
        (target snapshot hash, checkpoint hash, generator...), completed with the config hash,
        the seeds and the identity of any model loaded here.
    """
    gate = config.gate
    _check_inputs(config, synthetic_texts, target_train, target_heldout)
    identities = {**(identities or {}), "domain": config.name, "config_hash": config.config_hash(),
                  "mauve_seeds": list(gate.mauve_seeds),
                  "sample_seed": gate.sample_seed}
    if embed is None:
        embed, identities["embedder"] = embedder_features(config.generator)
    embed = CachedFeatures(embed)
    if gate.mauve_features == "embedder":
        mauve_features = embed
    else:
        if mauve_features is None:
            mauve_features, identities["mauve_feature_model"] = llm_features(config.generator)
        mauve_features = CachedFeatures(mauve_features)

    texts = list(synthetic_texts)
    checks = RowChecks(config.checks)
    filtered, leakage = filter_and_measure_leakage(texts, target_train, target_heldout, gate, embed, finished,
                                                   checks)
    dropped = count_by_reason(filtered.dropped)
    rates = {"leakage_rate": dropped["leakage"] / len(texts),
             "duplicate_rate": (dropped["exact_duplicate"] + dropped["near_duplicate"]) / len(texts),
             **leakage_metrics(leakage)}
    check_rates = None
    if filtered.checks is not None:
        rates["valid_rate"] = filtered.checks.valid_rate
        check_rates = {"rows_checked": filtered.checks.rows, "batch": filtered.checks.pass_rates,
                       "real_heldout": checks.run(list(target_heldout)).pass_rates,
                       "describe": {c.name: c.describe() for c in checks.checks}}
    selection = select_rows(unit_rows(embed([texts[i] for i in filtered.kept])), unit_rows(embed(list(target_train))),
                            config.generation.num_samples, config.generation.support_quantile, gate.sample_seed)
    off_support = [DroppedRow(filtered.kept[k], texts[filtered.kept[k]], "off_support",
                              f"nearest train row at distance {d:.3f} (support threshold {selection.threshold:.3f})")
                   for k, d in selection.off_support.items()]
    dropped_rows = sorted([*filtered.dropped, *off_support], key=lambda row: row.index)
    kept = [texts[filtered.kept[k]] for k in selection.selected]
    mauve, shape, unscored = None, {}, None
    histogram = length_histogram({"synthetic kept": kept, "real held-out": target_heldout})
    metrics = {**rates, "kept_rows": len(kept)}
    if len(kept) >= gate.min_rows:
        try:
            mauve, shape, histogram = _score(kept, target_train, target_heldout, gate, embed, mauve_features)
            metrics.update(mauve_metrics(mauve, gate), length_ks=shape["synthetic"].length_ks,
                           precision=shape["synthetic"].precision, recall=shape["synthetic"].recall)
        except UnscorableFeatures as exc:
            unscored = str(exc)
    else:
        unscored = _too_few_rows(config, len(kept), len(texts), count_by_reason(dropped_rows))
    decision, criteria = decide(metrics, gate, unscored, check_rates and check_rates["batch"])
    settings = {"gate": asdict(gate), "mauve_features": gate.mauve_features,
                "length_bounds": list(filtered.length_bounds)}
    report = GateReport(decision, criteria, len(texts), kept, dropped_rows, rates, mauve, shape, histogram,
                        settings, identities, leakage, check_rates, selection.summary(), decoding)
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report


PROVENANCE_COLUMNS = ("checkpoint_hash", "variant", "generator", "generator_identity", "embedder", "config_hash",
                      "target_snapshot_hash", "run_id", *SAMPLING_COLUMNS)


def batch_provenance(frame) -> dict:
    """What a batch's provenance columns say (checkpoint, variant, sampling settings...): one value, or
    the sorted distinct values when its shards differ."""
    provenance = {}
    for column in PROVENANCE_COLUMNS:
        if column in frame.columns:
            values = sorted({str(v) for v in frame[column].dropna()})
            provenance[column] = values[0] if len(values) == 1 else values
    return provenance


def read_synthetic_file(path: Path):
    """A synthetic batch from a Parquet file (as `synth generate` writes it), checked to have a `text` column."""
    import pandas as pd
    import pyarrow

    if not Path(path).is_file():
        raise GateInputError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise GateInputError(f"{path}: not a readable Parquet file ({exc})") from None
    if "text" not in frame.columns:
        raise GateInputError(f"{path}: no 'text' column (columns found: {list(frame.columns)})")
    frame["text"] = frame["text"].fillna("").astype(str)
    return frame


def finished_flags(frame) -> list[bool] | None:
    """The batch's `finished` column as a list, or None when the batch does not record it."""
    return frame["finished"].astype(bool).tolist() if "finished" in frame.columns else None

