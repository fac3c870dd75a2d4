"""The quality benchmark's plumbing at smoke scale (tiny random model), so the benchmark cannot rot."""

from __future__ import annotations

import json

import pytest

from synth_core.bench.quality import real_test_texts
from synth_core.cli import main as synth
from synth_core.config import load_domain
from synth_core.sources import load_target_split
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit


def test_smoke_quality_bench_scores_every_method_and_writes_its_outputs(tmp_path, capsys):
    assert synth(["bench", "quality", "--domains", "boolq", "--scale", "smoke", "--out", str(tmp_path),
                  "--domains-dir", str(REPO / "domains")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["mauve"]["boolq"]) == {"hard-prompt-plain", "hard-prompt-chat", "nsp", "mpk", "mc"}
    results = json.loads((tmp_path / "results.json").read_text())
    (domain,) = results["domains"]
    for name, row in domain["methods"].items():
        assert 0.0 <= row["mauve"] <= 1.0, name
        assert row["leakage_rate"] is not None and "heldout_loss_after" in row["downstream"]
        assert set(row["exact"]) == {"question_answer", "all"} and row["timings"]["generate_s"] > 0
        # with selection (16 candidates, 8 selected) and without (the first 8 that pass the filters): as many
        # rows kept, each scored in two feature spaces
        plain = row["without_selection"]
        assert row["input"] == 16 and min(8, row["kept"]) <= plain["input"] <= 16
        assert plain["kept"] == row["kept"], name
        for scored in (row, plain):
            assert 0.0 <= scored["mauve_llm"]["mauve"] <= 1.0 and "heldout_loss_after" in scored["downstream"]
    # at one row count, the fewest any method kept, every method scored against the same real rows
    (equal_rows,) = {row["equal_rows"]["rows"] for row in domain["methods"].values()}
    assert equal_rows == min(row["kept"] for row in domain["methods"].values())
    references = {(row["equal_rows"]["minilm"]["reference"], row["equal_rows"]["llm"]["reference"])
                  for row in domain["methods"].values()}
    assert len(references) == 1
    assert domain["reference"]["no_finetune_loss"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| mc |" in table and "selected / not" in table and f"kept rows at {equal_rows} rows" in table
    assert (tmp_path / "boolq.png").stat().st_size > 1000


def test_a_chosen_subset_of_methods_runs_alone(tmp_path, capsys):
    assert synth(["bench", "quality", "--domains", "boolq", "--scale", "smoke", "--out", str(tmp_path),
                  "--methods", "mc,hard-prompt-plain", "--domains-dir", str(REPO / "domains")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(summary["mauve"]["boolq"]) == ["hard-prompt-plain", "mc"]
    assert json.loads((tmp_path / "results.json").read_text())["methods"] == ["hard-prompt-plain", "mc"]


def test_downstream_loss_over_disjoint_row_subsets_reports_its_spread(tmp_path, caplog):
    caplog.set_level("INFO", logger="synth_core.downstream")
    assert synth(["bench", "quality", "--domains", "boolq", "--scale", "smoke", "--out", str(tmp_path),
                  "--methods", "nsp", "--downstream-subsets", "3", "--domains-dir", str(REPO / "domains")]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["downstream_subsets"] == 3
    real = results["domains"][0]["reference"]["real_rows_finetuned"]
    assert len(real["subset_losses"]) == 3  # 24 target rows: three disjoint slices of 8
    assert real["subset_mean"] == pytest.approx(sum(real["subset_losses"]) / 3, abs=1e-4)
    assert real["heldout_loss_after"] == real["subset_losses"][0]
    nsp = results["domains"][0]["methods"]["nsp"]["downstream"]
    assert 1 <= len(nsp["subset_losses"]) <= 3 and "subsets)" in (tmp_path / "results.md").read_text()
    # each fine-tune says how far it is, ending at its last step
    finished = [r.getMessage() for r in caplog.records if r.name == "synth_core.downstream" and "steps: loss" in r.getMessage()]
    without = results["domains"][0]["methods"]["nsp"]["without_selection"]["downstream"]
    runs = len(real["subset_losses"]) + len(nsp["subset_losses"]) + len(without["subset_losses"])
    assert sum(f"{real['steps']}/{real['steps']} steps" in m for m in finished) == runs
    with pytest.raises(SystemExit):
        synth(["bench", "quality", "--scale", "smoke", "--out", str(tmp_path), "--downstream-subsets", "0"])


def test_an_unknown_method_is_refused_by_name_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth(["bench", "quality", "--scale", "smoke", "--out", str(tmp_path), "--methods", "mc,softsrv"])
    assert exit_info.value.code == 2
    assert "unknown method(s) softsrv; choose from hard-prompt-plain" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_reuse_scores_an_earlier_runs_rows_again_without_training_or_sampling(tmp_path, capsys):
    args = ["bench", "quality", "--domains", "boolq", "--scale", "smoke", "--out", str(tmp_path),
            "--methods", "mc,hard-prompt-plain", "--domains-dir", str(REPO / "domains")]
    assert synth(args) == 0
    first = json.loads((tmp_path / "results.json").read_text())["domains"][0]["methods"]
    rows_written = (tmp_path / "boolq" / "mc.parquet").stat().st_mtime_ns
    assert synth([*args, "--reuse"]) == 0
    again = json.loads((tmp_path / "results.json").read_text())["domains"][0]["methods"]
    assert (tmp_path / "boolq" / "mc.parquet").stat().st_mtime_ns == rows_written
    for name in ("mc", "hard-prompt-plain"):
        assert again[name]["reused"].endswith(f"{name}.parquet")
        assert "train_s" not in again[name]["timings"] and "generate_s" not in again[name]["timings"]
        assert again[name]["mauve"] == first[name]["mauve"]
    assert again["mc"]["training"]["steps"] == first["mc"]["training"]["steps"] == 2
    assert again["mc"]["training"]["heldout_nll"] == pytest.approx(first["mc"]["training"]["heldout_nll"])
    # a trained prompt whose rows were deleted samples new rows without training again
    (tmp_path / "boolq" / "mc.parquet").unlink()
    assert synth([*args, "--reuse", "--methods", "mc"]) == 0
    resampled = json.loads((tmp_path / "results.json").read_text())["domains"][0]["methods"]["mc"]
    assert resampled["reused_checkpoint"].endswith("checkpoint") and "reused" not in resampled
    assert "train_s" not in resampled["timings"] and "generate_s" in resampled["timings"]
    assert resampled["training"]["heldout_nll"] == pytest.approx(first["mc"]["training"]["heldout_nll"])


def test_sampling_sweep_scores_each_setting_on_validation_rows_never_on_test(tmp_path, capsys):
    assert synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--scale", "smoke", "--method", "nsp",
                  "--temperatures", "1.0,0.7", "--top-p", "0.9", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "nsp" and set(summary["mauve"]) == {"t1-p0.9", "t0.7-p0.9"}
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["training"]["steps"] == 2 and results["validation_rows"] == 16
    for row in results["settings"]:
        assert 0.0 <= row["mauve"] <= 1.0 and 0.0 <= row["finished_fraction"] <= 1.0
    assert (tmp_path / "sampling.png").stat().st_size > 1000 and "| 0.7 | 0.9 |" in (tmp_path / "results.md").read_text()
    # the validation rows come from the held-out split, which shares no row with the test file
    config = load_domain(REPO / "domains" / "boolq.yaml")
    assert not set(load_target_split(config).heldout[:16]) & set(real_test_texts(config, 1000))
    # a second sweep reuses the trained prompt and the rows already sampled
    written = (tmp_path / "t1-p0.9.parquet").stat().st_mtime_ns
    assert synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--scale", "smoke", "--method", "nsp",
                  "--temperatures", "1.0", "--top-p", "0.9", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "t1-p0.9.parquet").stat().st_mtime_ns == written
    assert "training" not in json.loads((tmp_path / "results.json").read_text())
    with pytest.raises(SystemExit, match="is nsp, not mc"):  # the prompt left in --out is another variant
        synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--scale", "smoke", "--method", "mc",
               "--temperatures", "1.0", "--out", str(tmp_path)])


def test_sampling_sweep_runs_the_hard_prompt_baseline_without_a_soft_prompt(tmp_path, capsys):
    assert synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--scale", "smoke",
                  "--method", "hard-prompt-plain", "--temperatures", "0.7", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["method"] == "hard-prompt-plain" and results["checkpoint"] is None
    assert not (tmp_path / "checkpoint").exists() and 0.0 <= results["settings"][0]["mauve"] <= 1.0


def test_sampling_sweep_refuses_a_bad_setting_by_name(tmp_path):
    with pytest.raises(SystemExit, match="top_p=1.5"):
        synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--top-p", "1.5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--temperatures='hot'"):
        synth(["bench", "sampling", str(REPO / "domains" / "boolq.yaml"), "--temperatures", "hot",
               "--out", str(tmp_path)])


def test_a_seed_replaces_the_domain_s_training_and_sampling_seeds(tmp_path):
    import pandas as pd

    texts = {}
    for seed in (0, 1):
        out = tmp_path / str(seed)
        assert synth(["bench", "quality", "--domains", "boolq", "--scale", "smoke", "--out", str(out),
                      "--methods", "mc", "--seed", str(seed), "--domains-dir", str(REPO / "domains")]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["seed"] == seed
        texts[seed] = pd.read_parquet(out / "boolq" / "mc.parquet")["text"].tolist()
    assert texts[0] != texts[1]
