"""Soft-prompt checkpoints: θ as safetensors, plus everything needed to trust and resume it.

A checkpoint directory holds
- `soft_prompt.safetensors`: the trainable parameters θ (the LLM is never saved: it is frozen);
- `optimizer.pt`: AdamW state, so a resumed run continues the same optimisation;
- `checkpoint.json`: variant and shape, the resolved domain config, identities of the LLM, the
  embedder and the target data, the seed, the code version, the step and the loss curve.
Writes go to a temporary sibling and are renamed into place, so a kill never leaves a torn checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from synth_core.softprompt import SoftPrompt, build_soft_prompt

WEIGHTS = "soft_prompt.safetensors"
OPTIMIZER = "optimizer.pt"
METADATA = "checkpoint.json"


def code_version() -> str:
    try:
        return version("synth_core")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class CheckpointMeta:
    variant: str
    hyperparameters: dict[str, int]
    step: int
    config: dict[str, Any]
    identities: dict[str, Any]
    seed: int
    loss_history: list[list[float]] = field(default_factory=list)  # [step, train loss]
    eval_history: list[list[float]] = field(default_factory=list)  # [step, held-out NLL per token]
    code_version: str = field(default_factory=code_version)
    theta_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def theta_hash(soft_prompt: SoftPrompt) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(soft_prompt.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(directory: Path, soft_prompt: SoftPrompt, meta: CheckpointMeta,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write a checkpoint atomically into `directory` (replacing an older one there)."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in soft_prompt.state_dict().items()}
    save_file(state, tmp / WEIGHTS)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
    meta.theta_sha256 = theta_hash(soft_prompt)
    (tmp / METADATA).write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True, default=str))
    old = directory.with_name(f".{directory.name}.old{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def is_checkpoint(directory: Path) -> bool:
    return (Path(directory) / METADATA).exists() and (Path(directory) / WEIGHTS).exists()


def load_checkpoint(directory: Path, device: torch.device | str = "cpu") -> tuple[SoftPrompt, CheckpointMeta]:
    """Rebuild the soft prompt from a checkpoint directory; raises if it is missing or torn."""
    directory = Path(directory)
    if not is_checkpoint(directory):
        raise FileNotFoundError(f"{directory}: not a soft-prompt checkpoint (needs {WEIGHTS} and {METADATA})")
    meta = CheckpointMeta(**json.loads((directory / METADATA).read_text()))
    soft_prompt = build_soft_prompt(meta.variant, meta.hyperparameters)
    soft_prompt.load_state_dict(load_file(directory / WEIGHTS))
    return soft_prompt.to(device), meta


def load_optimizer_state(directory: Path, optimizer: torch.optim.Optimizer) -> bool:
    path = Path(directory) / OPTIMIZER
    if not path.exists():
        return False
    optimizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return True
