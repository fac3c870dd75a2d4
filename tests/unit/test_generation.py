"""Generation on the tiny random LM: seeded, sharded, streamed to Parquet with provenance."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synth_core.cli import main as synth
from synth_core.generation.factory import build_generator
from synth_core.generation.run import generate_to_parquet
from synth_core.generation.sharding import parse_shard, shard_range
from synth_core.generation.writer import SYNTHETIC_SCHEMA
from synth_core.softprompt.training import train_soft_prompt

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def checkpoints(tiny_config, tiny_lm, embedder, gsm8k_targets, tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {v: train_soft_prompt(tiny_config.with_overrides({"soft_prompt.variant": v, "soft_prompt.steps": 2}),
                                 tiny_lm, embedder, gsm8k_targets, root / v).checkpoint_dir
            for v in ("nsp", "mpk", "mc")}


def _generate(config, lm, embedder, targets, checkpoint, path, **kwargs):
    generator, _ = build_generator(config, checkpoint, lm=lm, embedder=embedder, targets=targets)
    result = generate_to_parquet(generator, path, num_samples=kwargs.pop("num_samples", 10),
                                 batch_size=config.generation.batch_size, **{"seed": 0, **kwargs})
    return result, pd.read_parquet(path)


@pytest.mark.parametrize("variant", ["nsp", "mpk", "mc"])
def test_each_variant_generates_rows_with_provenance(variant, checkpoints, tiny_config, tiny_lm, embedder,
                                                     gsm8k_targets, tmp_path):
    result, rows = _generate(tiny_config, tiny_lm, embedder, gsm8k_targets, checkpoints[variant],
                             tmp_path / "s.parquet")
    assert len(rows) == result.rows == 10
    assert set(rows["variant"]) == {variant}
    assert rows["checkpoint_hash"].str.len().eq(64).all()
    assert rows["sample_index"].tolist() == list(range(10))
    assert rows["context_index"].tolist() == [j % len(gsm8k_targets.train) for j in range(10)]
    assert (rows["new_tokens"] <= tiny_config.generation.max_new_tokens).all()
    assert rows["text"].map(len).sum() > 0
    assert list(rows.columns) == SYNTHETIC_SCHEMA.names and result.sampling["top_p"] == tiny_config.generation.top_p


def test_same_seed_same_samples_and_another_seed_differs(checkpoints, tiny_config, tiny_lm, embedder,
                                                         gsm8k_targets, tmp_path):
    args = (tiny_config, tiny_lm, embedder, gsm8k_targets, checkpoints["mc"])
    _, a = _generate(*args, tmp_path / "a.parquet")
    _, b = _generate(*args, tmp_path / "b.parquet")
    _, c = _generate(*args, tmp_path / "c.parquet", seed=7)
    assert a["text"].tolist() == b["text"].tolist()
    assert a["text"].tolist() != c["text"].tolist()


def test_shards_are_disjoint_reproducible_and_complete(checkpoints, tiny_config, tiny_lm, embedder, gsm8k_targets,
                                                       tmp_path):
    args = (tiny_config, tiny_lm, embedder, gsm8k_targets, checkpoints["nsp"])
    parts = [_generate(*args, tmp_path / f"p{i}.parquet", num_samples=11, shard=i, shards=3)[1] for i in range(3)]
    again = _generate(*args, tmp_path / "again.parquet", num_samples=11, shard=1, shards=3)[1]
    indices = [set(p["sample_index"]) for p in parts]
    assert sum(len(p) for p in parts) == 11
    assert set().union(*indices) == set(range(11))
    assert all(not (indices[i] & indices[j]) for i in range(3) for j in range(i + 1, 3))
    assert again["text"].tolist() == parts[1]["text"].tolist()
    assert [list(p["shard"].unique()) for p in parts] == [[0], [1], [2]]


@pytest.mark.parametrize(("num_samples", "shards"), [(10, 3), (2, 4), (7, 1), (0, 2)])
def test_shard_ranges_partition_the_batch(num_samples, shards):
    ranges = [shard_range(num_samples, i, shards) for i in range(shards)]
    assert [j for r in ranges for j in r] == list(range(num_samples))


def test_bad_shard_spec_names_the_value():
    with pytest.raises(ValueError, match="'3/3'"):
        parse_shard("3/3")


@pytest.mark.parametrize("style", ["plain", "chat"])
def test_hard_prompt_baseline_uses_the_same_output_format(style, tiny_config, tiny_lm, embedder, gsm8k_targets,
                                                          tmp_path):
    config = tiny_config.with_overrides({"generation.baseline_style": style})
    result, rows = _generate(config, tiny_lm, embedder, gsm8k_targets, None, tmp_path / "b.parquet", num_samples=5)
    assert list(rows.columns) == SYNTHETIC_SCHEMA.names  # the soft-prompt generators write the same schema
    assert set(rows["temperature"]) == {config.generation.temperature} and set(rows["dtype"]) == {"float32"}
    assert set(rows["variant"]) == {f"hard-prompt-{style}"} and len(rows) == 5


def test_hard_prompt_puts_k_target_examples_in_the_prompt(tiny_config, tiny_lm, gsm8k_targets):
    from synth_core.generation.hard_prompt import HardPromptGenerator

    generator = HardPromptGenerator(tiny_lm, gsm8k_targets.train, tiny_config.generation)
    prompt = generator.prompt(3, seed=0)
    shots = generator.shots(3, seed=0)
    assert len(shots) == tiny_config.generation.baseline_shots
    assert all(gsm8k_targets.train[i] in prompt for i in shots)
    assert prompt.startswith(tiny_config.generation.baseline_instruction)


def test_cli_train_then_generate_prints_a_json_summary(tmp_path, capsys, monkeypatch):
    yaml_path = tmp_path / "tiny.yaml"
    from tests.unit.conftest import REPO

    yaml_path.write_text(
        "name: tiny\n"
        f"source: {{kind: file, uri: {REPO}/domains/data/gsm8k/train.jsonl, max_rows: 60,\n"
        "  text_template: \"Question: {question}\\nAnswer: {answer}\"}\n"
        "generator: {model: 'embedded:tiny-random'}\n"
        "soft_prompt: {variant: nsp, num_tokens: 2, steps: 2, batch_size: 2, max_length: 32, eval_rows: 4}\n"
        "generation: {num_samples: 3, batch_size: 3, max_new_tokens: 4}\n")
    assert synth(["train", str(yaml_path), "--out", str(tmp_path / "run")]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["steps"] == 2 and trained["variant"] == "nsp"
    assert synth(["generate", str(yaml_path), "--checkpoint", trained["checkpoint_dir"], "--out",
                  str(tmp_path / "s.parquet"), "--shard", "0/1"]) == 0
    generated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # num_samples x generation.oversample (default 2) candidate rows, with the decoding auto chose
    assert generated["rows"] == 6 and generated["checkpoint_hash"] == trained["checkpoint_hash"]
    assert generated["decoding"]["auto"] and len(generated["decoding"]["tried"]) == 6
    sampling, decoding = generated["sampling"], generated["decoding"]
    assert (sampling["temperature"], sampling["top_p"]) == (decoding["temperature"], decoding["top_p"])
    assert synth(["generate", str(yaml_path), "--checkpoint", trained["checkpoint_dir"], "--out",
                  str(tmp_path / "t.parquet"), "--set", "generation.max_new_tokens=1",
                  "--set", "generation.temperature=0.5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_tokens"] <= 6  # 6 rows of at most 1 token
    assert synth(["generate", str(yaml_path), "--checkpoint", trained["checkpoint_dir"], "--out",
                  str(tmp_path / "u.parquet"), "--set", "generation.temperature=hot"]) == 2
    refused = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    assert "generation.temperature" in refused and "hot" in refused and not (tmp_path / "u.parquet").exists()


def test_cli_override_needs_section_key_and_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth(["generate", "x.yaml", "--baseline", "hard-prompt", "--out", str(tmp_path / "s.parquet"),
               "--set", "temperature"])
    assert exit_info.value.code == 2 and "expected section.key=value" in capsys.readouterr().err


def test_cli_reports_a_bad_yaml_value_with_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: tiny\nsource: {uri: x.jsonl, text_template: '{text}'}\nsoft_prompt: {variant: xyz}\n")
    assert synth(["train", str(bad)]) == 2
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert str(bad) in summary["error"] and "soft_prompt.variant" in summary["error"] and "xyz" in summary["error"]


def test_hard_prompt_with_no_examples_samples_from_the_instruction_alone(tiny_config, tiny_lm, gsm8k_targets):
    """The gate bench's "untrained" degradation: the frozen generator with the instruction and no example."""
    from synth_core.generation.hard_prompt import HardPromptGenerator

    generator = HardPromptGenerator(tiny_lm, gsm8k_targets.train,
                                    tiny_config.with_overrides({"generation.baseline_shots": 0}).generation)
    assert "Example 1:" in generator.prompt(0, seed=0) and not any(t in generator.prompt(0, seed=0)
                                                                   for t in gsm8k_targets.train)
    batch, context = generator.sample([0, 1], seed=0)
    assert len(batch.texts) == 2 and context == [-1, -1]
