"""Deterministic sharding: `shard i of n` owns a contiguous, disjoint range of global sample indices.

Everything random about a sample (its context example, its noise, its few-shot examples) is keyed
by the global sample index, so a shard's rows do not depend on how many other shards there are.
"""

from __future__ import annotations

import re


def parse_shard(spec: str) -> tuple[int, int]:
    """'I/N' (0-based I) -> (I, N), with a message that names the bad value."""
    match = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise ValueError(f"--shard={spec!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def shard_range(num_samples: int, shard: int, shards: int) -> range:
    """The global sample indices shard `shard` of `shards` produces; together they cover 0..num_samples-1."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard={shard}: must be in [0, {shards})")
    base, extra = divmod(num_samples, shards)
    start = shard * base + min(shard, extra)
    return range(start, start + base + (1 if shard < extra else 0))
