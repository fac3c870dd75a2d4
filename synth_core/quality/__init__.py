"""The quality gate: filters, calibrated MAUVE, diversity and shape, decision, report."""

from synth_core.quality.decision import Criterion, decide
from synth_core.quality.gate import GateInputError, read_synthetic_file, run_gate
from synth_core.quality.mauve_score import calibrated_mauve
from synth_core.quality.report import GateReport

__all__ = ["Criterion", "GateInputError", "GateReport", "calibrated_mauve", "decide", "read_synthetic_file",
           "run_gate"]
