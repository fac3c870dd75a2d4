"""What a downstream consumer does with a published batch: fine-tune on it and measure, at small scale.

`evaluate_latest` follows the domain's `_latest.json` pointer to the newest approved batch, checks its
manifest, LoRA fine-tunes a copy of the domain's generator on N published rows for a few steps, and
reports the copy's next-token loss on the held-out targets of the batch's own snapshot before and
after. A falling held-out loss says the synthetic rows carry the domain's signal.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

from synth_core.config import DomainConfig
from synth_core.layout import MANIFEST, latest_key
from synth_core.progress import Progress
from synth_core.store import ArtifactStore, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSettings:
    rows: int = 64
    steps: int = 20
    learning_rate: float = 1.0e-3
    batch_size: int = 8
    max_length: int = 128
    lora_rank: int = 8
    heldout_rows: int = 64
    seed: int = 0
    bf16: bool = False  # bf16 autocast for the forward passes (the LoRA weights and optimiser stay fp32)


def latest_manifest(config: DomainConfig, published: ArtifactStore | None = None) -> dict[str, Any]:
    """The manifest `_latest.json` points at, after checking the pointer's sha256 of it."""
    published = published or open_store(config.publish.uri, config.publish.conn_id)
    pointer = published.get_json(latest_key(config.name))
    data = published.get_bytes(pointer["manifest_key"])
    if hashlib.sha256(data).hexdigest() != pointer["manifest_sha256"]:
        raise ValueError(f"{published.uri_for(pointer['manifest_key'])} does not match the sha256 in "
                         f"{published.uri_for(latest_key(config.name))}")
    return {**json.loads(data), "prefix": pointer["run_prefix"]}


def published_texts(manifest: dict[str, Any], published: ArtifactStore, limit: int) -> list[str]:
    """The first `limit` texts of the batch, reading its Parquet files in manifest order."""
    import pandas as pd

    texts: list[str] = []
    for entry in manifest["files"]:
        if len(texts) >= limit:
            break
        frame = pd.read_parquet(io.BytesIO(published.get_bytes(f"{manifest['prefix']}/{entry['key']}")))
        texts += frame["text"].tolist()
    return texts[:limit]


def mean_nll(model: Any, tokenizer: Any, texts: list[str], settings: FinetuneSettings) -> float:
    """Mean next-token loss per text token (padding masked by the attention mask, not by token id)."""
    import torch

    from synth_core.softprompt.training import collate, tokenize_targets

    rows = sorted(tokenize_targets(tokenizer, texts, settings.max_length), key=len)  # batches of like lengths pad less
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad(), _autocast(model, settings):
        for start in range(0, len(rows), settings.batch_size):
            loss, count = _batch_loss(model, *collate(rows[start : start + settings.batch_size],
                                                      tokenizer.pad_token_id))
            total, tokens = total + float(loss) * count, tokens + count
    return total / max(tokens, 1)


def _autocast(model: Any, settings: FinetuneSettings) -> Any:
    import torch

    from synth_core.models import use_bf16

    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(settings.bf16, device, "downstream bf16"))


def _batch_loss(model: Any, input_ids: Any, attention_mask: Any) -> tuple[Any, int]:
    """Mean loss over the predicted tokens of a padded batch, and how many there are."""
    import torch

    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    labels = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)
    return loss, int((labels != -100).sum())


def finetune_and_score(lm: Any, train_texts: list[str], heldout_texts: list[str], settings: FinetuneSettings,
                       loss_before: float | None = None) -> dict[str, Any]:
    """LoRA-tune a copy of `lm.model` on `train_texts`; its held-out loss before and after.

    `loss_before` is `mean_nll` of the untuned model on `heldout_texts`, when the caller already has it.
    """
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from synth_core.softprompt.training import collate, tokenize_targets

    if not train_texts or not heldout_texts:
        raise ValueError(f"need published and held-out rows, got {len(train_texts)} and {len(heldout_texts)}")
    torch.manual_seed(settings.seed)
    model = get_peft_model(copy.deepcopy(lm.model), LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank,
                                                               target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    before = mean_nll(model, lm.tokenizer, heldout_texts, settings) if loss_before is None else loss_before
    rows = tokenize_targets(lm.tokenizer, train_texts, settings.max_length)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(settings.seed)).tolist()
    losses = []
    model.train()
    # a benchmark runs several of these back to back for minutes each: a line per quarter says how far it is
    with Progress(log, f"LoRA fine-tune on {len(train_texts)} rows", settings.steps, "steps") as progress:
        for step in range(settings.steps):
            picks = [order[(step * settings.batch_size + i) % len(rows)] for i in range(settings.batch_size)]
            with _autocast(model, settings):
                loss, _ = _batch_loss(model, *collate([rows[i] for i in picks], lm.tokenizer.pad_token_id))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(round(loss.item(), 4))
            progress.update(step + 1, f"loss {losses[-1]:.4f}",
                            log=(step + 1) % max(1, settings.steps // 4) == 0 or step + 1 == settings.steps)
    after = mean_nll(model, lm.tokenizer, heldout_texts, settings)
    return {"heldout_loss_before": round(before, 4), "heldout_loss_after": round(after, 4),
            "heldout_loss_change": round(after - before, 4), "train_losses": losses,
            "train_rows": len(train_texts), "heldout_rows": len(heldout_texts), "steps": settings.steps}


def evaluate_latest(config: DomainConfig, settings: FinetuneSettings = FinetuneSettings()) -> dict[str, Any]:
    """Fine-tune on the newest approved batch of the domain and score on its snapshot's held-out split."""
    from synth_core.models import load_frozen_lm
    from synth_core.snapshot import read_target_split

    published = open_store(config.publish.uri, config.publish.conn_id)
    manifest = latest_manifest(config, published)
    targets = read_target_split(config, manifest["run_id"], open_store(config.store.uri, config.store.conn_id))
    scores = finetune_and_score(load_frozen_lm(config.generator), published_texts(manifest, published, settings.rows),
                                targets.heldout[: settings.heldout_rows], settings)
    return {"domain": config.name, "run_id": manifest["run_id"], "ds": manifest["ds"],
            "manifest": published.uri_for(f"{manifest['prefix']}/{MANIFEST}"), "generator": config.generator.model,
            **scores}
