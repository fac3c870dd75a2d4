"""Progress: a bar on a terminal, log lines with figures and time left anywhere else."""

from __future__ import annotations

import io
import logging

import pytest

from synth_core.progress import Progress

pytestmark = pytest.mark.unit
log = logging.getLogger("synth.test.progress")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_each_update_is_a_log_line_with_figures_and_time_left(caplog, monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with caplog.at_level(logging.INFO, logger=log.name), Progress(log, "training", 40, "steps", done=10) as progress:
        progress.update(20, "loss 1.2345", log=False)
        progress.update(30, "loss 1.1000")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("training 30/40 steps: loss 1.1000 (")
    assert line.endswith(" s left)")


def test_on_a_terminal_it_is_a_bar_with_the_figures_and_no_log_lines(caplog, monkeypatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    with caplog.at_level(logging.INFO, logger=log.name), Progress(log, "generating", 8, "rows") as progress:
        assert progress.bar is not None
        progress.update(4, "12.5 tok/s")
        progress.update(8, "13.0 tok/s")
        assert progress.bar.n == 8
        progress.bar.refresh()
    assert not caplog.records
    shown = terminal.getvalue()
    assert "generating" in shown and "8/8" in shown and "13.0 tok/s" in shown


def test_ci_counts_as_no_terminal(monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr", Terminal())
    monkeypatch.setenv("CI", "true")
    assert Progress(log, "training", 3, "steps").bar is None


def test_hugging_faces_own_bars_stay_out_of_logs(monkeypatch) -> None:
    """Loading a model with no terminal writes no "Loading weights" bar (it did into every task log)."""
    from transformers.utils import logging as hf_logging

    from synth_core.config import GeneratorConfig
    from synth_core.models import _load_embedder_cached, load_embedder

    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    try:
        _load_embedder_cached.cache_clear()  # a real load, even if another test loaded it already
        load_embedder(GeneratorConfig())
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
    assert "Loading weights" not in stderr.getvalue()
