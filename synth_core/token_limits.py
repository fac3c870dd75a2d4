"""`auto` token limits: the training length and the generation cap follow the targets' own lengths.

A limit below the targets' lengths biases everything after it. Rows cut at `soft_prompt.max_length` are
trained without their end, so the prompt learns that long rows run on; generated rows that reach
`generation.max_new_tokens` are cut and dropped, so the published batch is shorter than the targets.
The old fixed 256 (192 in the small benchmark) held only 94% (78%) of GSM8K's train rows whole. `auto`
takes the length that holds `COVERED_SHARE` of the train rows whole with their end-of-sequence token,
so one outlier row does not set the cost of every training batch and every runaway generated row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from synth_core.config import AUTO, DomainConfig

COVERED_SHARE = 0.995
ROUND_TO = 16  # tokens; a limit a reader can recognise, and a little room above the covered rows


def covering_length(token_counts: Sequence[int]) -> int:
    """Tokens that hold `COVERED_SHARE` of rows whole with their EOS token, rounded up to `ROUND_TO`."""
    if not token_counts:
        raise ValueError("no train rows to measure the token limits on")
    ordered = sorted(token_counts)
    covered = ordered[min(len(ordered) - 1, math.ceil(round(COVERED_SHARE * len(ordered), 6)) - 1)] + 1  # + EOS
    return ROUND_TO * math.ceil(covered / ROUND_TO)


def token_counts(tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens per row, as training sees them (no special tokens; the EOS is counted by `covering_length`)."""
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def resolve_token_limits(config: DomainConfig, tokenizer, train_texts: Sequence[str]) -> DomainConfig:
    """The config with `auto` token limits replaced by the train rows' covering length (fixed ones kept)."""
    keys = [key for key, value in (("soft_prompt.max_length", config.soft_prompt.max_length),
                                   ("generation.max_new_tokens", config.generation.max_new_tokens)) if value == AUTO]
    if not keys:
        return config
    length = covering_length(token_counts(tokenizer, train_texts))
    return config.with_overrides(dict.fromkeys(keys, length))
