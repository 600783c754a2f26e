"""End to end on text: the text preset (params/text.yaml) through the real DVC stages and MLflow store.

A tiny corpus slice and model (gpt2_micro, 100 sequences of 24 tokens, K = 2) so that it stays about a minute on
2 cores: the point is the wiring (every stage from prepare to summary runs the text path, writes its outputs and
logs one MLflow child run under one parent), not the figures (tests/test_text.py and benchmarks/text_seed003.py).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from e2e_project import REPO, _merge, dvc, ran_stages, tiny_project  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e

TEXT_STAGES = ["prepare", "train", "memorize", "proxies", "partition", "oracle", "unlearn", "evaluate", "summary"]
TINY_TEXT = {
    "data": {"text": {"vocab_size": 300, "seq_len": 24, "max_sequences": 100, "canary_copies": [1, 8],
                      "canary_digits": 3}},
    "train": {"model": "gpt2_micro", "epochs": 2, "device": "cpu"},
    "memorize": {"num_models": 2},
    "methods": {"first_epoch_ga": {"max_steps": 20}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    preset = yaml.safe_load((REPO / "params/text.yaml").read_text())
    with tiny_project(tmp_path_factory.mktemp("text"), _merge(preset, TINY_TEXT)) as root:
        yield root


@pytest.fixture(scope="module")
def repro(project):
    return dvc(project, "repro", "summary")


def test_the_text_preset_runs_every_stage_to_the_summary(project, repro):
    assert sorted(ran_stages(repro.stdout)) == sorted(TEXT_STAGES)
    meta = json.loads((project / "data/prepared/meta.json").read_text())
    assert meta["modality"] == "text" and meta["seq_len"] == 24
    import pandas as pd

    canaries = pd.read_csv(project / "data/prepared/canaries.csv")
    assert len(canaries) == 2 * 1 + 2 * 8
    scores = pd.read_parquet(project / "data/memorize/scores.parquet")
    assert {"mem", "mem_prob", "n_in", "n_out"} <= set(scores.columns)
    forget = pd.read_csv(project / "data/partition/forget.csv")
    assert sorted(forget["example_id"]) == sorted(canaries["example_id"])  # kind canaries: every copy
    results = pd.read_csv(project / "results/evaluation.csv").set_index("model")
    assert list(results.index) == ["original", "unlearned", "retrain"] and results.loc["retrain", "tow"] == 1.0
    assert {"forget_ppl", "validation_ppl", "exposure_mean", "mia"} <= set(results.columns)
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert 0 <= summary["tow"] <= 1 and summary["num_models"] == 2


def test_mlflow_holds_one_parent_run_with_a_child_per_text_stage(project, repro):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns.db'}")
    experiment = mlflow.get_experiment_by_name("memunlearn")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = {r.data.tags.get("memunlearn.stage", r.info.run_name): r for r in runs if r not in parents}
    assert len(children) == len(TEXT_STAGES) and all(r.info.status == "FINISHED" for r in children.values())
    train = next(r for r in children.values() if "validation_ppl" in r.data.metrics and "train_ppl" in r.data.metrics)
    assert train.data.params["train.model"] == "gpt2_micro"


def test_check_names_an_image_model_on_a_text_corpus_in_one_line(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["model"] = "small_cnn"
    bad = project / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "memunlearn.cli", "check", "--params", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("train.model: 'small_cnn' is an image model but data.dataset")
