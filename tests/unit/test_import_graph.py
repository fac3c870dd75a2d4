"""Imports point down: every synth_core module imports on its own (no cycle needs a lucky import order),
and the leaf modules that config and the DAG files rely on import nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                 for p in (REPO / "synth_core").rglob("*.py"))

# Each module in a fresh interpreter, one process for all: importing it first must work, whatever
# else is imported later. A cycle shows as an ImportError naming a partially initialised module.
PROBE = """
import importlib, json, sys
errors, loaded = {}, {}
for name in sys.argv[1:]:
    before = set(sys.modules)
    for key in [k for k in sys.modules if k.startswith("synth_core")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
    loaded[name] = sorted(k for k in sys.modules if k.startswith("synth_core"))
print(json.dumps({"errors": errors, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def imports() -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_imports_on_its_own(imports: dict):
    assert len(MODULES) > 40 and imports["errors"] == {}


@pytest.mark.parametrize(("leaf", "allowed"), [
    ("synth_core.layout", set()),
    ("synth_core.pii_patterns", set()),
    ("synth_core.config", {"synth_core.pii_patterns"}),
    ("synth_core.domains", {"synth_core.config", "synth_core.layout", "synth_core.pii_patterns"}),
])
def test_leaf_modules_import_only_what_they_must(imports: dict, leaf: str, allowed: set[str]):
    assert set(imports["loaded"][leaf]) - {"synth_core", leaf} == allowed


def test_loading_a_domain_config_stays_in_the_leaves():
    """Validation of a config on load used to import validation and quality (and numpy) lazily."""
    probe = ("import json, sys; from synth_core.domains import discover_domains; "
             "found = discover_domains(); "
             "print(json.dumps({'domains': [d.name for d in found if d.config], 'numpy': 'numpy' in sys.modules, "
             "'loaded': sorted(k for k in sys.modules if k.startswith('synth_core'))}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"boolq", "gsm8k", "mbpp"} <= set(result["domains"]) and not result["numpy"]
    assert set(result["loaded"]) == {"synth_core", "synth_core.config", "synth_core.domains", "synth_core.layout",
                                     "synth_core.pii_patterns"}
