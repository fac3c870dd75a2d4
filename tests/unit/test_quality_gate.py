"""End-to-end gate tests on real text: GSM8K targets, the real MiniLM embedder, small samples.

Targets are a 300-row slice of the GSM8K domain (150 train, 150 held-out); the "real" synthetic
batch is 150 rows of GSM8K's separate test file, so real-vs-real must pass without leaking.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.config import DomainConfig, load_domain
from synth_core.models import load_embedder
from synth_core.quality import GateInputError, read_synthetic_file, run_gate
from synth_core.quality.features import CachedFeatures
from synth_core.sources import TargetSplit, load_target_split, render_texts

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ROWS = 150


def _domain_yaml(tmp: Path) -> Path:
    """The GSM8K domain, cut to 300 source rows (150 train / 150 held-out, no validation rows) so the tests stay
    fast, without its row checks and support cut: these tests count the other filters
    (test_row_checks_on_real_rows has the checks, test_support_cut_* the support cut)."""
    text = re.sub(r"checks:\n(  - .*\n)+", "", (REPO / "domains" / "gsm8k.yaml").read_text())
    text = text.replace("uri: data/gsm8k/train.jsonl", f"uri: {REPO / 'domains/data/gsm8k/train.jsonl'}")
    text = text.replace("holdout_fraction: 0.2", "holdout_fraction: 0.5\n  validation_fraction: 0\n  max_rows: 300")
    text = text.replace("generation: {", "generation: {support_quantile: null, ")
    path = tmp / "gsm8k_small.yaml"
    path.write_text(text)
    return path


def _test_rows(domain: str, rows: int = ROWS) -> list[str]:
    config = load_domain(REPO / "domains" / f"{domain}.yaml")
    return render_texts(config, pd.read_json(REPO / "domains" / "data" / domain / "test.jsonl", lines=True))[:rows]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread for torch, BLAS and OpenMP (faiss k-means): on a shared 2-core machine, spinning
    threads make embedding and MAUVE several times slower. Restored after this module."""
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(torch_threads)


@pytest.fixture(scope="module")
def domain_yaml(tmp_path_factory) -> Path:
    return _domain_yaml(tmp_path_factory.mktemp("domain"))


@pytest.fixture(scope="module")
def config(domain_yaml) -> DomainConfig:
    return load_domain(domain_yaml)


@pytest.fixture(scope="module")
def targets(config) -> TargetSplit:
    split = load_target_split(config)
    assert (len(split.train), len(split.heldout)) == (ROWS, ROWS)
    return split


@pytest.fixture(scope="module")
def embed(config) -> CachedFeatures:
    """The real MiniLM embedder, memoised across the module so each text is embedded once.

    Batches of 16 pad less than the default 64 and run faster on a busy 2-core machine."""
    embedder = load_embedder(config.generator)
    return CachedFeatures(lambda texts: embedder.encode(texts, batch_size=16))


@pytest.fixture(scope="module")
def gsm8k_test_rows() -> list[str]:
    return _test_rows("gsm8k")


def _gate(config, batch, targets, embed, **kwargs):
    return run_gate(config, batch, targets.train, targets.heldout, embed=embed,
                    identities={"target_snapshot_hash": targets.snapshot_hash}, **kwargs)


@pytest.fixture(scope="module")
def real_report(config, targets, embed, gsm8k_test_rows):
    return _gate(config, gsm8k_test_rows, targets, embed)


def test_real_vs_real_passes(real_report):
    data = real_report.to_dict()
    assert real_report.decision == "pass", data["reasons"]
    assert data["counts"]["kept"] == ROWS and data["rates"]["leakage_rate"] == 0.0
    synthetic, reference = data["mauve"]["synthetic"], data["mauve"]["reference"]
    assert synthetic["mean"] > 0.8 and reference["mean"] > 0.8
    assert len(synthetic["per_seed"]) == 3 and synthetic["spread"] >= 0.0
    assert data["mauve"]["settings"] | {"num_buckets": 15, "sample_size": ROWS} == data["mauve"]["settings"]


def test_row_checks_on_real_rows(domain_yaml, targets, embed, gsm8k_test_rows):
    """The seed domain's checks drop the few real rows whose arithmetic the check misreads (2% of GSM8K),
    name the check, and the batch still passes."""
    with_checks = load_domain(domain_yaml).with_overrides({"checks": [
        c.__dict__ for c in load_domain(REPO / "domains" / "gsm8k.yaml").checks]})
    report = _gate(with_checks, gsm8k_test_rows, targets, embed)
    failed = [row for row in report.dropped if row.reason == "failed_check"]
    assert report.decision == "pass" and 0 < len(failed) <= 5
    assert all("check 'arithmetic'" in row.detail for row in failed)
    checks = report.to_dict()["checks"]
    assert checks["batch"]["final_answer"] == 1.0 and checks["real_heldout"]["final_answer"] == 1.0


def test_same_inputs_and_seeds_give_the_same_report(real_report, config, targets, embed, gsm8k_test_rows):
    again = _gate(config, gsm8k_test_rows, targets, embed).to_dict()
    first = real_report.to_dict()
    first.pop("created_at"), again.pop("created_at")
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_verbatim_copies_of_targets_fail_on_leakage(config, targets, embed, tmp_path):
    report = _gate(config, targets.train[:60] + targets.heldout[:40], targets, embed, out_dir=tmp_path)
    data = report.to_dict()
    assert report.decision == "fail"
    # every copy of any target row is removed; the criterion counts copies of train rows against real data's rate
    assert data["counts"]["dropped_by_reason"]["leakage"] == 100 and data["rates"]["leakage_rate"] == 1.0
    assert data["leakage"]["synthetic"]["count"] == 60 and data["leakage"]["reference"]["rows"] == ROWS
    leakage = next(c for c in data["criteria"] if c["metric"] == "leakage_excess")
    assert leakage["outcome"] == "fail" and "gate.leakage_margin=0.02" in leakage["reason"]
    page = (tmp_path / "gate_report.html").read_text()
    assert "Near copies of train rows" in page and "real held-out rows" in page


def test_another_domain_fails_on_mauve(config, targets, embed):
    report = _gate(config, _test_rows("mbpp", rows=100), targets, embed)
    mauve = next(c for c in report.to_dict()["criteria"] if c["metric"] == "mauve")
    assert report.decision == "fail" and mauve["outcome"] == "fail"
    assert report.mauve.synthetic.mean < 0.2 < report.mauve.reference.mean


def test_support_cut_keeps_real_rows_and_drops_another_domains(config, targets, embed, gsm8k_test_rows, tmp_path):
    """Calibrated on the train rows' own nearest-neighbour distances: at the 0.95 quantile about 5% of real
    rows fall outside, and rows of another domain almost all do."""
    cut = config.with_overrides({"generation.support_quantile": 0.95})
    real = _gate(cut, gsm8k_test_rows, targets, embed, out_dir=tmp_path)
    selection = real.to_dict()["selection"]
    assert real.decision == "pass" and selection["off_support"] <= 0.1 * ROWS
    assert selection["selected"] == len(real.kept_texts) == ROWS - selection["off_support"]
    assert "lay off the train rows' support" in (tmp_path / "gate_report.html").read_text()
    other = _gate(cut, _test_rows("mbpp", rows=100), targets, embed)
    assert other.decision == "fail" and other.to_dict()["selection"]["off_support"] >= 90
    assert "off_support" in " ".join(other.reasons)


def test_oversampled_batch_is_cut_to_the_requested_rows(config, targets, embed, gsm8k_test_rows):
    requested = config.with_overrides({"generation.num_samples": 100, "generation.support_quantile": 0.95})
    report = _gate(requested, gsm8k_test_rows, targets, embed)
    selection = report.to_dict()["selection"]
    assert len(report.kept_texts) == 100 and selection["clusters"] == 5
    assert selection["not_selected"] == ROWS - selection["off_support"] - 100 and report.to_dict()["counts"]["not_selected"]


def test_duplicates_and_degenerate_rows_are_removed_and_counted(config, targets, embed, gsm8k_test_rows, tmp_path):
    real = gsm8k_test_rows[:120]
    near_copies = [row.rsplit("####", 1)[0] + "#### 987654" for row in real[:5]]
    degenerate = ["", "   \n", "Answer: 4", real[0] * 8, "It is 5 and 5. " * 30]
    pii = [real[1] + " Questions? Mail jane.doe@example.com", real[2] + " Call 555-123-4567."]
    batch = real + real[:10] + [r.upper() for r in real[10:13]] + near_copies + degenerate + pii
    report = _gate(config, batch, targets, embed, out_dir=tmp_path)
    data = json.loads((tmp_path / "gate_report.json").read_text())
    assert data["counts"]["dropped_by_reason"] == {
        "empty": 2, "unfinished": 0, "too_short": 1, "too_long": 1, "repetition": 1, "failed_check": 0, "pii": 2, "leakage": 0,
        "exact_duplicate": 13, "near_duplicate": 5, "off_support": 0}
    assert data["counts"]["kept"] == 120 and report.kept_texts == real
    assert data["rates"]["duplicate_rate"] == pytest.approx(18 / len(batch))
    dropped = pd.read_parquet(tmp_path / "gate_dropped_rows.parquet")
    assert len(dropped) == len(batch) - 120
    assert not dropped["text"].str.contains("jane.doe@example.com").any()  # PII is redacted in reports
    page = (tmp_path / "gate_report.html").read_text()
    assert "data:image/png;base64," in page and "exact_duplicate" in page and "<script" not in page


def test_html_report_escapes_text(config, targets, embed, gsm8k_test_rows, tmp_path):
    hostile = gsm8k_test_rows[0].replace("Question:", "Question: <script>alert(1)</script>")
    _gate(config, [hostile] + gsm8k_test_rows[:40], targets, embed, out_dir=tmp_path)
    page = (tmp_path / "gate_report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_bad_inputs_raise_a_clear_error(config, targets, embed, gsm8k_test_rows, tmp_path):
    with pytest.raises(GateInputError, match="empty batch"):
        _gate(config, [], targets, embed)
    too_few = _gate(config, gsm8k_test_rows[:10], targets, embed)  # a batch too small to score fails, saying why
    assert too_few.decision == "fail" and too_few.mauve is None
    assert any("only 10 of 10" in r and "gate.min_rows=20" in r for r in too_few.reasons)
    with pytest.raises(GateInputError, match=r"held-out split has 5 rows; gate.min_rows=20"):
        run_gate(config, gsm8k_test_rows, targets.train, targets.heldout[:5], embed=embed)
    path = tmp_path / "batch.parquet"
    pd.DataFrame({"generated": ["a"], "variant": ["mc"]}).to_parquet(path)
    with pytest.raises(GateInputError, match=r"batch.parquet: no 'text' column \(columns found: \['generated', "):
        read_synthetic_file(path)
    for name, content in (("empty.parquet", b""), ("text.parquet", b"not parquet at all")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(GateInputError, match=rf"{name}: not a readable Parquet file"):
            read_synthetic_file(tmp_path / name)


def test_cli_gate_exit_codes_and_summary(domain_yaml, targets, embed, gsm8k_test_rows, tmp_path, monkeypatch,
                                         capsys):
    identity = {"name": "embedded:all-minilm-l6-v2", "file_hash": "test"}
    monkeypatch.setattr("synth_core.quality.gate.embedder_features", lambda _config: (embed, identity))
    real = tmp_path / "real.parquet"
    pd.DataFrame({"text": gsm8k_test_rows, "checkpoint_hash": "abc123", "variant": "mc"}).to_parquet(real)
    copies = tmp_path / "copies.parquet"
    pd.DataFrame({"text": targets.train[:30]}).to_parquet(copies)

    assert main(["gate", str(domain_yaml), "--synthetic", str(real), "--out", str(tmp_path / "r1")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["decision"] == "pass" and summary["kept"] == ROWS
    identities = json.loads((tmp_path / "r1" / "gate_report.json").read_text())["identities"]
    assert identities["checkpoint_hash"] == "abc123" and identities["variant"] == "mc"
    assert identities["target_snapshot_hash"] == targets.snapshot_hash and identities["embedder"] == identity

    assert main(["gate", str(domain_yaml), "--synthetic", str(copies), "--out", str(tmp_path / "r2")]) == 4
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["decision"] == "fail"

    assert main(["gate", str(domain_yaml), "--synthetic", str(tmp_path / "missing.parquet"),
                 "--out", str(tmp_path / "r3")]) == 2
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "gate_input" and "missing.parquet: file not found" in summary["error"]


def test_cut_off_rows_are_dropped_and_dropped_rows_never_carry_pii(config, targets, embed, gsm8k_test_rows, tmp_path):
    real = gsm8k_test_rows[:100]
    card = "4111 1111 1111 1111"
    too_long = real[0] + f" Pay with card {card}." + " and then more words" * 200
    batch = real + [real[100 - 1][:40], too_long]
    finished = [True] * 100 + [False, True]  # the 101st row stopped at the token cap
    report = _gate(config, batch, targets, embed, out_dir=tmp_path, finished=finished)
    by_reason = report.to_dict()["counts"]["dropped_by_reason"]
    assert by_reason["unfinished"] == 1 and by_reason["too_long"] == 1 and report.kept_texts == real
    dropped = pd.read_parquet(tmp_path / "gate_dropped_rows.parquet")
    assert "stopped at generation.max_new_tokens" in dropped.loc[dropped["reason"] == "unfinished", "detail"].item()
    assert not dropped["text"].str.contains(card).any() and "[redacted card_number]" in " ".join(dropped["text"])
    for name in ("gate_report.json", "gate_report.html"):
        assert card not in (tmp_path / name).read_text(), name
    all_cut = _gate(config, real[:30], targets, embed, finished=[False] * 30)
    assert all_cut.decision == "fail"
    assert re.search(r"dropped: \{'unfinished': 30\}.*30 rows were cut at generation.max_new_tokens=auto, which "
                     r"holds 99.5% of the train rows whole", " ".join(all_cut.reasons))
    fixed_cap = _gate(config.with_overrides({"generation.max_new_tokens": 64}), real[:30], targets, embed,
                      finished=[False] * 30)
    assert "30 rows were cut at generation.max_new_tokens=64, raise it" in " ".join(fixed_cap.reasons)
    kept_all = _gate(config.with_overrides({"gate.drop_unfinished": False}), batch, targets, embed, finished=finished)
    assert kept_all.to_dict()["counts"]["dropped_by_reason"]["unfinished"] == 0
