"""Thread budget benchmark: two training processes on one machine, with and without the budget.

A Celery worker runs as many tasks at once as it has slots. Each torch process starts one thread per
core, so two training tasks on two cores run four threads that spin on each other's cores. The budget
(`models.cpu_threads`: $SYNTH_TORCH_THREADS, else the cores divided by
$AIRFLOW__CELERY__WORKER_CONCURRENCY) gives each process its share. This bench measures soft-prompt
training steps per second of one process alone (every core), then of two at once with the budget (a
2-slot worker), then of two at once without it, each process in its own interpreter; the figure is
each concurrent process's speed as a fraction of the lone process's (0.5 is a fair share of the cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

BUDGET_VARIABLES = ("SYNTH_TORCH_THREADS", "AIRFLOW__CELERY__WORKER_CONCURRENCY")


def steps_per_second(model: str, steps: int, start_at: float) -> dict[str, Any]:
    """In a worker: load the model, warm up, wait for `start_at` (so concurrent workers overlap), then time
    `steps` training steps (batch 8, 64 tokens, fp32)."""
    import torch

    from synth_core.bench.throughput import training_step
    from synth_core.config import GeneratorConfig
    from synth_core.models import load_frozen_lm

    lm = load_frozen_lm(GeneratorConfig(model=model))
    training_step(lm, 8, 64, 16, bf16=False)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for _ in range(steps):
        training_step(lm, 8, 64, 16, bf16=False)
    seconds = time.perf_counter() - started
    # training_step runs three steps (a warm-up and the best of two)
    return {"steps_per_second": 3 * steps / seconds, "torch_threads": torch.get_num_threads(), "seconds": seconds}


def _workers(count: int, model: str, steps: int, budget: dict[str, str], lead_s: float) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k not in BUDGET_VARIABLES} | budget
    start_at = time.time() + lead_s
    code = ("import json, sys; from synth_core.bench.threads import steps_per_second; "
            "print(json.dumps(steps_per_second(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))")
    processes = [subprocess.Popen([sys.executable, "-c", code, model, str(steps), str(start_at)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"training worker failed ({process.returncode}): {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def run_threads(model: str = "embedded:smollm2-135m", steps: int = 3, lead_s: float = 30.0) -> dict[str, Any]:
    """Speeds alone and two at once, with the budget a 2-slot worker gets and without any budget."""
    cores = os.cpu_count() or 1
    alone = _workers(1, model, steps, {}, lead_s)[0]
    budgeted = _workers(2, model, steps, {"AIRFLOW__CELERY__WORKER_CONCURRENCY": "2"}, lead_s)
    unbudgeted = _workers(2, model, steps, {}, lead_s)

    def share(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"processes": runs, "each_vs_alone": [r["steps_per_second"] / alone["steps_per_second"] for r in runs]}

    return {"cores": cores, "model": model, "steps": steps, "alone": alone,
            "two_with_budget": share(budgeted), "two_without_budget": share(unbudgeted)}
