"""Drive a generator over one shard's sample indices and stream the rows to Parquet with provenance."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from synth_core.config import GenerationConfig
from synth_core.generation.decoding import BATCHES_PER_CALL, DecodedBatch
from synth_core.generation.sharding import shard_range
from synth_core.generation.writer import SyntheticParquetWriter
from synth_core.progress import Progress

if TYPE_CHECKING:
    from synth_core.generation.calculator import Calculator
    from synth_core.models import FrozenLM

log = logging.getLogger(__name__)


class Generator(Protocol):
    variant: str
    checkpoint_hash: str
    lm: FrozenLM
    settings: GenerationConfig
    calculator: Calculator | None

    def sample(self, sample_indices: list[int], seed: int) -> tuple[DecodedBatch, list[int]]:
        """Rows for `sample_indices`, with `settings.batch_size` of them decoding at a time, and per row the index
        of the target it was conditioned on."""
        ...


def sample_calls(generator: Generator, indices: list[int], batch_size: int, seed: int
                 ) -> Iterator[tuple[list[int], DecodedBatch, list[int]]]:
    """`indices` sampled `BATCHES_PER_CALL` batches per call: (the call's indices, its rows, their targets)."""
    size = batch_size * BATCHES_PER_CALL
    for start in range(0, len(indices), size):
        chunk = indices[start : start + size]
        yield chunk, *generator.sample(chunk, seed)


@dataclass
class GenerationResult:
    path: str
    rows: int
    shard: int
    shards: int
    variant: str
    checkpoint_hash: str
    new_tokens: int
    finished_fraction: float
    seconds: float
    tokens_per_second: float
    sampling: dict

    def summary(self) -> dict:
        return dict(self.__dict__)


def sampling_settings(generator: Generator) -> dict:
    """What the rows are drawn with: the decoding settings and the generator's weight dtype."""
    settings = generator.settings
    return {"temperature": settings.temperature, "top_p": settings.top_p, "max_new_tokens": settings.max_new_tokens,
            "dtype": str(generator.lm.model.dtype).removeprefix("torch."), "calculator": generator.calculator is not None}


def generate_to_parquet(generator: Generator, out_path: Path, *, num_samples: int, batch_size: int, seed: int,
                        shard: int = 0, shards: int = 1, generator_name: str = "") -> GenerationResult:
    """Generate this shard's rows of a `num_samples` batch into `out_path` (atomic)."""
    indices = list(shard_range(num_samples, shard, shards))
    started = time.perf_counter()
    tokens = finished = 0
    sampling = sampling_settings(generator)
    with SyntheticParquetWriter(out_path) as writer, Progress(log, f"generating shard {shard}/{shards}",
                                                              len(indices), "rows") as progress:
        for chunk, batch, context_indices in sample_calls(generator, indices, batch_size, seed):
            writer.write([
                {"text": text, "sample_index": j, "shard": shard, "variant": generator.variant,
                 "checkpoint_hash": generator.checkpoint_hash, "context_index": c, "seed": seed,
                 "new_tokens": n, "finished": f, "generator": generator_name, **sampling}
                for j, c, text, n, f in zip(chunk, context_indices, batch.texts, batch.new_tokens, batch.finished,
                                            strict=True)
            ])
            tokens += sum(batch.new_tokens)
            finished += sum(batch.finished)
            progress.update(writer.rows_written, f"{tokens / max(time.perf_counter() - started, 1e-9):.1f} tok/s, "
                                                 f"{finished / writer.rows_written:.0%} finished")
    seconds = time.perf_counter() - started
    return GenerationResult(str(out_path), len(indices), shard, shards, generator.variant, generator.checkpoint_hash,
                            tokens, finished / max(len(indices), 1), seconds, tokens / max(seconds, 1e-9), sampling)
