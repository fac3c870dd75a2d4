"""Train a soft prompt against a frozen LM by next-token loss on the target texts.

The prefix fed to the LM is only the soft tokens P_θ(z_i); the loss covers the tokens of x_i (and
its end-of-sequence token, so the model learns to stop) and never the prefix or the padding.
Padding is masked by the attention mask, not by token id: SmolLM2 pads with its EOS token.

Batches are drawn from a generator seeded by (seed, pool), so a run resumed from a checkpoint at
step s sees exactly the batches the uninterrupted run would have seen. Each pool of LENGTH_POOL
batches is drawn at once and split by row length, so a batch pads little (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from synth_core.config import DomainConfig
from synth_core.models import Embedder, FrozenLM, use_bf16
from synth_core.progress import Progress
from synth_core.softprompt import SoftPrompt, build_soft_prompt
from synth_core.softprompt.checkpoint import (
    CheckpointMeta,
    is_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    save_checkpoint,
)
from synth_core.token_limits import resolve_token_limits

if TYPE_CHECKING:  # sources needs pandas; a GPU device check trains a soft prompt without it
    from synth_core.sources import TargetSplit

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
# soft_prompt keys that may change between a checkpoint and a run that resumes it
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "eval_every", "log_every", "warm_start"}
LENGTH_POOL = 8  # batches drawn together and sorted by length


@dataclass
class TrainResult:
    checkpoint_dir: Path
    checkpoint_hash: str
    variant: str
    steps: int
    resumed_from_step: int
    first_loss: float | None
    final_loss: float | None
    initial_heldout_nll: float | None
    heldout_nll: float | None
    seconds: float
    tokens_per_second: float
    max_length: int  # tokens per target row trained on (an `auto` limit, measured)
    loss_history: list[list[float]] = field(default_factory=list)

    def summary(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "loss_history"}


def tokenize_targets(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text and its closing EOS token; a text longer than `max_length` is cut there and
    gets no EOS: an EOS after a cut teaches the model to stop mid-row (GSM8K answers before their `####` line)."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [row + [tokenizer.eos_token_id] if len(row) < max_length else row[:max_length] for row in ids]


def warn_about_long_targets(rows: list[list[int]], eos_id: int, config: DomainConfig) -> None:
    """Say how many target rows training sees cut at `soft_prompt.max_length`, and how many could not be
    generated whole within `generation.max_new_tokens`: rows like those are cut and dropped, so the
    published rows come out shorter than the targets."""
    cut = sum(row[-1] != eos_id for row in rows)
    if cut:
        log.warning("%d of %d target rows (%.0f%%) are longer than soft_prompt.max_length=%d tokens: trained on "
                    "their beginning only", cut, len(rows), 100 * cut / len(rows), config.soft_prompt.max_length)
    cap = config.generation.max_new_tokens
    too_long = sum(len(row) > cap for row in rows)
    if too_long:
        log.warning("%d of %d target rows (%.0f%%) need more than generation.max_new_tokens=%d tokens: generated "
                    "rows like them are cut there and dropped", too_long, len(rows), 100 * too_long / len(rows), cap)


def collate(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def batch_rows(lengths: np.ndarray, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Indices of the rows trained on at `step`.

    Steps come in pools of up to LENGTH_POOL batches drawn without replacement; a pool's rows are
    sorted by length and cut into batches, which the pool then visits in random order. Every row
    is as likely as under plain random batches; only which rows share a batch changes.
    """
    pool_batches = max(1, min(LENGTH_POOL, len(lengths) // batch_size))
    pool_index, slot = divmod(step, pool_batches)
    rng = np.random.default_rng([seed, pool_index])
    size = batch_size * pool_batches
    pool = rng.choice(len(lengths), size=size, replace=len(lengths) < size)
    pool = pool[np.argsort(lengths[pool], kind="stable")]
    chosen = rng.permutation(pool_batches)[slot]
    return pool[chosen * batch_size : (chosen + 1) * batch_size]


def row_nll(lm: FrozenLM, soft_prompt: SoftPrompt, context: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's summed next-token NLL of its target tokens given the soft prefix, and its token count."""
    device = lm.device
    input_ids, attention_mask, context = input_ids.to(device), attention_mask.to(device), context.to(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        token_embeds = lm.model.get_input_embeddings()(input_ids)  # (B, L, d)
        prefix = soft_prompt(context).to(token_embeds.dtype)  # (B, t, d)
        t = prefix.shape[1]
        inputs = torch.cat([prefix, token_embeds], dim=1)
        mask = torch.cat([torch.ones_like(attention_mask[:, :1]).expand(-1, t), attention_mask], dim=1)
        logits = lm.model(inputs_embeds=inputs, attention_mask=mask).logits
    # the logit at position t-1+j predicts target token j; the last position predicts nothing
    predicting = logits[:, t - 1 : -1].float()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    nll = torch.nn.functional.cross_entropy(predicting.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return nll.sum(dim=1), attention_mask.sum(dim=1)


def target_nll(lm: FrozenLM, soft_prompt: SoftPrompt, context: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL of the batch's target tokens given the soft prefix, and the token count."""
    nll, counts = row_nll(lm, soft_prompt, context, input_ids, attention_mask, bf16)
    return nll.sum(), int(counts.sum())


def training_loss(nll: torch.Tensor, counts: torch.Tensor, weighting: str) -> torch.Tensor:
    """The loss a step minimises from each row's summed NLL and token count. `token`: the mean over every
    target token of the batch, so a long row weighs as much as several short ones; `row`: the mean over rows
    of each row's mean token NLL, so every target example weighs the same whatever its length."""
    if weighting == "row":
        return (nll / counts.clamp(min=1)).mean()
    return nll.sum() / counts.sum().clamp(min=1)


@torch.no_grad()
def heldout_nll(lm: FrozenLM, soft_prompt: SoftPrompt, context: np.ndarray, token_rows: list[list[int]],
                batch_size: int, bf16: bool = False) -> float:
    """Mean NLL per target token on held-out texts: the training curve's honest counterpart."""
    total, count = 0.0, 0
    for start in range(0, len(token_rows), batch_size):
        input_ids, attention_mask = collate(token_rows[start : start + batch_size], lm.tokenizer.pad_token_id)
        nll, n = target_nll(lm, soft_prompt, torch.from_numpy(context[start : start + batch_size]),
                            input_ids, attention_mask, bf16)
        total, count = total + float(nll), count + n
    return total / max(count, 1)


def _new_soft_prompt(config: DomainConfig, lm: FrozenLM, context_dim: int) -> SoftPrompt:
    from synth_core.softprompt import VARIANT_REGISTRY

    cfg = config.soft_prompt
    cls = VARIANT_REGISTRY[cfg.variant]
    hyper = {"num_tokens": cfg.num_tokens, "hidden_size": lm.hidden_size, "context_dim": context_dim,
             **{key: getattr(cfg, key) for key in cls.config_keys}}
    generator = torch.Generator().manual_seed(cfg.seed)
    token_embeddings = lm.model.get_input_embeddings().weight.detach().cpu()
    return build_soft_prompt(cfg.variant, hyper, token_embeddings=token_embeddings, generator=generator)


def _check_resumable(meta: CheckpointMeta, config: DomainConfig, identities: dict) -> None:
    old = {k: v for k, v in meta.config["soft_prompt"].items() if k not in RESUMABLE_CHANGES}
    new = {k: v for k, v in config.to_dict()["soft_prompt"].items() if k not in RESUMABLE_CHANGES}
    if old != new:
        changed = sorted(k for k in new if old.get(k) != new[k])
        raise ValueError(f"cannot resume: soft_prompt settings changed since the checkpoint: {changed}")
    if meta.identities != identities:
        changed = sorted(k for k in identities if meta.identities.get(k) != identities[k])
        raise ValueError(f"cannot resume: {changed} changed since the checkpoint (use warm_start instead)")


def _start(config: DomainConfig, lm: FrozenLM, context_dim: int, checkpoint_dir: Path, resume: bool,
           identities: dict) -> tuple[SoftPrompt, CheckpointMeta]:
    """The soft prompt to train and its record: resumed from `checkpoint_dir`, warm-started from
    `soft_prompt.warm_start`, or new."""
    cfg = config.soft_prompt
    meta = CheckpointMeta(variant=cfg.variant, hyperparameters={}, step=0, config=config.to_dict(),
                          identities=identities, seed=cfg.seed)
    if resume and is_checkpoint(checkpoint_dir):
        soft_prompt, meta = load_checkpoint(checkpoint_dir)
        _check_resumable(meta, config, identities)
        meta.config = config.to_dict()
        log.info("resuming %s from step %d", checkpoint_dir, meta.step)
        return soft_prompt, meta
    if cfg.warm_start:
        soft_prompt, warm = load_checkpoint(config.resolve_path(cfg.warm_start))
        expected = _new_soft_prompt(config, lm, context_dim).hyperparameters()
        if warm.variant != cfg.variant or warm.hyperparameters != expected:
            raise ValueError(f"soft_prompt.warm_start={cfg.warm_start!r}: checkpoint is {warm.variant} "
                             f"{warm.hyperparameters}, config needs {cfg.variant} {expected}")
        meta.identities = {**identities, "warm_start": warm.theta_sha256}
        log.info("warm start from %s (trained %d steps)", cfg.warm_start, warm.step)
        return soft_prompt, meta
    return _new_soft_prompt(config, lm, context_dim), meta


def _optimise(soft_prompt: SoftPrompt, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
              grad_clip: float) -> float:
    """One optimiser step on `loss`; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(soft_prompt.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def train_soft_prompt(config: DomainConfig, lm: FrozenLM, embedder: Embedder, targets: TargetSplit,
                      out_dir: Path, resume: bool = False) -> TrainResult:
    """Train (or resume, or warm-start) the domain's soft prompt; checkpoints land in out_dir/checkpoint.
    `auto` token limits are measured on the train rows (token_limits.py)."""
    config = resolve_token_limits(config, lm.tokenizer, targets.train)
    cfg = config.soft_prompt
    started = time.perf_counter()
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / CHECKPOINT_DIR
    identities = {"llm": lm.identity.to_dict(), "embedder": embedder.identity.to_dict(),
                  "target_snapshot": targets.snapshot_hash}
    torch.manual_seed(cfg.seed)
    bf16 = use_bf16(cfg.bf16, lm.device, "soft_prompt.bf16")

    train_context = embedder.encode_cached(targets.train)
    heldout_texts = targets.heldout[: cfg.eval_rows]
    heldout_context = embedder.encode_cached(heldout_texts)
    train_tokens = tokenize_targets(lm.tokenizer, targets.train, cfg.max_length)
    heldout_tokens = tokenize_targets(lm.tokenizer, heldout_texts, cfg.max_length)
    warn_about_long_targets(train_tokens, lm.tokenizer.eos_token_id, config)

    soft_prompt, meta = _start(config, lm, train_context.shape[1], checkpoint_dir, resume, identities)
    soft_prompt.to(lm.device).train()
    meta.hyperparameters = soft_prompt.hyperparameters()
    resumed_from = meta.step
    if not resumed_from:
        soft_prompt.eval()
        meta.eval_history.append([0, heldout_nll(lm, soft_prompt, heldout_context, heldout_tokens, cfg.batch_size,
                                                 bf16)])
        soft_prompt.train()

    optimizer = torch.optim.AdamW(soft_prompt.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if resumed_from:
        load_optimizer_state(checkpoint_dir, optimizer)

    tokens_seen, ema = 0, None
    train_lengths = np.array([len(row) for row in train_tokens])
    progress = Progress(log, "training", cfg.steps, "steps", done=resumed_from)
    for step in range(resumed_from, cfg.steps):
        picks = batch_rows(train_lengths, cfg.batch_size, step, cfg.seed)
        input_ids, attention_mask = collate([train_tokens[i] for i in picks], lm.tokenizer.pad_token_id)
        nll, counts = row_nll(lm, soft_prompt, torch.from_numpy(train_context[picks]), input_ids,
                              attention_mask, bf16)
        loss_value = _optimise(soft_prompt, optimizer, training_loss(nll, counts, cfg.loss_weighting), cfg.grad_clip)
        tokens_seen += int(counts.sum())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {step + 1}; "
                                     f"lower soft_prompt.learning_rate={cfg.learning_rate}")
        meta.loss_history.append([step + 1, loss_value])
        ema = loss_value if ema is None else 0.9 * ema + 0.1 * loss_value
        meta.step = step + 1
        done = meta.step == cfg.steps
        progress.update(meta.step, f"loss {loss_value:.4f} (ema {ema:.4f}), "
                                   f"{tokens_seen / max(time.perf_counter() - started, 1e-9):.0f} tok/s",
                        log=meta.step % cfg.log_every == 0 or done)
        if meta.step % cfg.eval_every == 0 or done:
            soft_prompt.eval()
            meta.eval_history.append([meta.step, heldout_nll(lm, soft_prompt, heldout_context, heldout_tokens,
                                                             cfg.batch_size, bf16)])
            soft_prompt.train()
            log.info("step %d held-out NLL/token %.4f", meta.step, meta.eval_history[-1][1])
        if meta.step % cfg.checkpoint_every == 0 or done:
            save_checkpoint(checkpoint_dir, soft_prompt, meta, optimizer)
    progress.close()

    if not is_checkpoint(checkpoint_dir) or resumed_from == cfg.steps:
        save_checkpoint(checkpoint_dir, soft_prompt, meta, optimizer)
    seconds = time.perf_counter() - started
    return TrainResult(
        checkpoint_dir=checkpoint_dir, checkpoint_hash=meta.theta_sha256, variant=cfg.variant,
        resumed_from_step=resumed_from, **loss_summary(meta), seconds=seconds,
        tokens_per_second=tokens_seen / max(seconds, 1e-9), max_length=cfg.max_length, loss_history=meta.loss_history)


def loss_summary(meta: CheckpointMeta) -> dict:
    """The training curve in five numbers; the final loss is the mean of the last 10 steps (one step is noisy)."""
    losses = [loss for _, loss in meta.loss_history]
    return {"steps": meta.step, "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "initial_heldout_nll": meta.eval_history[0][1] if meta.eval_history else None,
            "heldout_nll": meta.eval_history[-1][1] if meta.eval_history else None}
