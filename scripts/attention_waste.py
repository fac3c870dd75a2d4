"""How much decode attention does keeping the batch full waste, and what would grouping rows by width save?

`PARQUET... [--room N] [--prompt P]`: replays the sampler's admission rule (`ADMIT_SHARE`, `BATCHES_PER_CALL`
calls of `room` rows each) on the token counts of generated rows and counts the key columns attention reads
per step: as the sampler attends (every row over the widest row's columns), as the rows need (each over its
own), and with the rows split into two groups of similar width (sorted, the ideal grouping; a real one would
also pay to keep rows sorted). Prints one JSON line per file. docs/BENCHMARKS.md, "Keeping the batch full",
has the figures and the decision they led to.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from synth_core.generation.decoding import ADMIT_SHARE, BATCHES_PER_CALL


def column_reads(lengths: list[int], room: int, prompt: int) -> tuple[int, int, int]:
    """Key columns read over one sampler call: (as now, two groups by width, each row its own)."""
    pending, active, now, grouped, exact = list(lengths), [], 0, 0, 0
    while pending or active:
        free = room - len(active)
        if pending and (free >= max(1, room // ADMIT_SHARE) or not active):
            active += [[prompt, n] for n in pending[:free]]
            pending = pending[free:]
        columns = np.sort([c + 1 for c, _ in active])[::-1]
        now += len(columns) * int(columns[0])
        exact += int(columns.sum())
        grouped += sum(len(g) * int(g[0]) for g in np.array_split(columns, 2) if len(g))
        active = [[c + 1, n - 1] for c, n in active if n > 1]
    return now, grouped, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parquet", nargs="+")
    parser.add_argument("--room", type=int, default=50, help="rows decoding at once (generation.batch_size)")
    parser.add_argument("--prompt", type=int, default=16, help="prompt width in positions (soft prompt tokens)")
    args = parser.parse_args()
    call = BATCHES_PER_CALL * args.room
    for path in args.parquet:
        lengths = pd.read_parquet(path).sort_values("sample_index")["new_tokens"].clip(lower=1).tolist()
        now, grouped, exact = map(sum, zip(*(column_reads(lengths[i:i + call], args.room, args.prompt)
                                             for i in range(0, len(lengths), call)), strict=True))
        print(json.dumps({"rows": path, "wasted_share": round(1 - exact / now, 3),
                          "two_groups_save": round(1 - grouped / now, 3)}))


if __name__ == "__main__":
    main()
