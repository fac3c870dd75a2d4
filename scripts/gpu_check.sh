#!/usr/bin/env bash
# GPU check for a worker with one NVIDIA GPU and only PyTorch, transformers, peft and
# sentence-transformers installed (no hub, no project install): the GPU-marked tests, then the
# throughput bench on a random ~1B Llama-shaped model; one JSON file with both.
#   scripts/gpu_check.sh [OUT.json] [SHAPE] [device_check options, e.g. --batches 1,4]
#   SHAPE: 1b (default) or tiny (runs on a CPU, in seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check.json}"
SHAPE="${2:-1b}"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

TESTS="not run (pytest is not installed)"
if "$PYTHON" -c "import pytest" 2>/dev/null; then
  # --noconftest: the suite's fixtures need the project's full install; these tests need none of them.
  if "$PYTHON" -m pytest tests/gpu -m gpu --noconftest -q -p no:cacheprovider; then
    TESTS="passed"
  else
    TESTS="failed"
  fi
fi
"$PYTHON" -m synth_core.bench.device_check --shape "$SHAPE" --out "$OUT" "${@:3}" >/dev/null
"$PYTHON" - "$OUT" "$TESTS" <<'PY'
import json, sys
path, tests = sys.argv[1], sys.argv[2]
result = json.loads(open(path).read())
result["gpu_tests"] = tests
open(path, "w").write(json.dumps(result, indent=2) + "\n")
print(json.dumps({"out": path, "gpu_tests": tests, "seconds": result["seconds"],
                  "ours_vs_plain": {row["batch"]: {d: round(row[d]["ours_vs_plain"], 2) for d in ("fp32", "bf16")}
                                    for row in result["generation"]}}))
PY
[ "$TESTS" != "failed" ]
