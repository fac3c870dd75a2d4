"""Progress of the loops a person waits on (training steps, generated rows, MAUVE resamples, benchmark methods).

On a terminal it is a tqdm bar with rate and ETA, the loop's figures beside it; anywhere else (Airflow
task logs, CI, a redirected CLI) it is a log line with the same figures, elapsed seconds and an
estimate of the time left, so a task log shows how far a long step has come without a bar's noise.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType


def interactive() -> bool:
    """Whether a person watches stderr live: a terminal, and not CI (whose log may still be a pseudo-tty)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def quiet_library_bars() -> None:
    """Hugging Face's own bars ("Loading weights ...") only where a person watches; in logs they are noise."""
    if not interactive():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


class Progress:
    """`total` units of work named `what` (e.g. "training", "steps"), `done` of them finished already."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str, done: int = 0) -> None:
        self.log, self.what, self.total, self.unit = logger, what, total, unit
        self.first, self.started = done, time.perf_counter()
        self.bar = None
        if interactive():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=what, unit=f" {unit}", dynamic_ncols=True, leave=False)

    def update(self, done: int, figures: str = "", log: bool = True) -> None:
        """`done` units finished in all; `figures` say how it goes. `log=False` skips the log line (the bar
        always moves), for loops that log every few steps."""
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if figures:
                self.bar.set_postfix_str(figures, refresh=False)
            return
        if not log:
            return
        elapsed = time.perf_counter() - self.started
        rate = (done - self.first) / max(elapsed, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("nan")
        self.log.info("%s %d/%d %s%s (%.0f s, ~%.0f s left)", self.what, done, self.total, self.unit,
                      f": {figures}" if figures else "", elapsed, left, stacklevel=2)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
