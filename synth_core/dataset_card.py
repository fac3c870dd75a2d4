"""The dataset card published beside every approved batch (Hugging Face style README.md with YAML front
matter): what the data is, how it was made, its gate result, intended use and license."""

from __future__ import annotations

from typing import Any

from synth_core.config import DomainConfig


def card_metadata(config: DomainConfig, manifest: dict[str, Any]) -> str:
    """The card's YAML front matter through huggingface_hub (valid YAML whatever the names hold), with a
    `configs` entry so that `datasets.load_dataset(<published folder>)` reads the Parquet parts."""
    from huggingface_hub import DatasetCardData

    return DatasetCardData(
        pretty_name=f"{config.name} synthetic ({manifest['ds']}, run {manifest['run_id']})",
        license=config.publish.license_id, tags=["synthetic", "softsrv", *config.tags],
        task_categories=["text-generation"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "part-*.parquet"}]}],
    ).to_yaml() + "\n"


def render_dataset_card(config: DomainConfig, manifest: dict[str, Any]) -> str:
    """A Hugging Face style dataset card: what the data is, how it was made, its gate result, use, license."""
    lineage, gate = manifest["lineage"], manifest["gate"]
    metrics = "\n".join(f"| {k} | {v} |" for k, v in sorted(gate["metrics"].items())
                        if isinstance(v, (int, float, str, bool))) or "| (none reported) | |"
    comment = f' Their comment: "{manifest["review_comment"]}".' if manifest.get("review_comment") else ""
    review = f"Approved by **{manifest['approved_by']}** after review.{comment}" if manifest.get("approved_by") else \
        "Approved automatically by the gate (no review needed)."
    return f"""---
{card_metadata(config, manifest)}---

# {config.name}: synthetic text, run `{manifest['run_id']}` ({manifest['ds']})

## What this is
{manifest['rows']} synthetic examples in the style of the **{config.name}** domain: {config.description or "(no description)"}
Each row has a `text` column plus provenance columns. Owner: {config.owner}.

## How it was made
A SoftSRV soft prompt was trained on a frozen LLM (`{lineage['generator']}`) against governed target
examples, conditioned on context vectors from `{lineage['embedder']}`, and sampled; the samples were
filtered (duplicates, near-copies of targets, degenerate text, PII) and validated with Great Expectations.

| identity | value |
| --- | --- |
| target snapshot hash | `{lineage['snapshot_hash']}` |
| soft-prompt checkpoint hash | `{lineage['checkpoint_hash']}` |
| config hash | `{lineage['config_hash']}` |
| run artifacts | `{lineage['artifacts']}` |

## Quality gate
Decision: **{gate['decision']}** ({'; '.join(gate['reasons']) or 'no reasons given'}). {review}

| metric | value |
| --- | --- |
{metrics}

## Intended use
Fine-tuning and evaluating models for the {config.name} domain where real data is scarce. Not a source of
facts: answers may be wrong. Do not use it to evaluate a model as if it were real data.

## License
Synthetic derivative of the domain's target data, whose license is: {config.publish.license}.

## Files
See `manifest.json` beside this card: every file with its size, sha256 and row count.
"""
