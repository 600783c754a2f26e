"""End to end on text: the text preset (params/text.yaml) on a user's JSONL file through the real DVC stages and
MLflow store.

A tiny corpus and model (gpt2_micro, 100 records of Python's reference docs written as a JSONL file,
``data.dataset: text_jsonl``, cut to 24 tokens; K = 2) so that it stays a few minutes on 2 cores: the record's
ids (owner ids) and the planted canaries reach every output; the point is the wiring (every stage from prepare to summary runs the text path, writes its outputs and
logs one MLflow child run under one parent; then the grids, grids_evaluate, grids_report, proxy_study and claims:
first-epoch gradient ascent's ablations and the paper's findings 1 (first against all and last epochs), 2, 4), not the figures (tests/test_text.py and benchmarks/text_first_epoch_ga.py).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from e2e_project import (ALWAYS_RUN, REPO, _merge, commit, dvc, experiments, owners_in_outputs,  # tests/ is on
                         ran_stages, tiny_project)  # sys.path under pytest

pytestmark = pytest.mark.e2e

TEXT_STAGES = ["prepare", "train", "memorize", "proxies", "partition", "oracle", "unlearn", "evaluate", "summary"]
RECORDS = "records.jsonl"  # data.path: the fixture writes it into the project (``write_records``)
TINY_TEXT = {
    "data": {"dataset": "text_jsonl", "path": RECORDS,
             "text": {"vocab_size": 300, "seq_len": 24, "max_sequences": 0, "canary_copies": [1, 8],
                      "canary_digits": 3}},
    "train": {"model": "gpt2_micro", "epochs": 2, "device": "cpu"},
    "memorize": {"num_models": 2},
    "methods": {name: {"max_steps": 20} for name in ("first_epoch_ga", "first_epoch_ga_all", "last_epoch_ga_embedding",
                                                      "last_epoch_ga_all", "all_epochs_ga_embedding")},
    # the ablation grid: first- vs last-epoch gradients x embedding vs all layers, and all-epochs gradients on the
    # embedding (the paper's comparison), three training seeds; the other grids one seed each, small forget sets
    "ablations": {"methods": ["first_epoch_ga", "first_epoch_ga_all", "last_epoch_ga_embedding", "last_epoch_ga_all",
                              "all_epochs_ga_embedding"]},
    "levels": {"seeds": [0], "partition": {"size": 10}},
    "rum_compare": {"seeds": [0], "partition": {"size": 10}},
    "entanglement": {"methods": ["finetune"], "seeds": [0]},
    "levels_clean": {"seeds": [0], "partition": {"size": 10}},
}
GRID_STAGES = ["proxy_study", "tune", "grids", "grids_evaluate", "grids_report", "claims"]  # tune: none on text
ABLATIONS = {("first_epoch", "embedding"), ("first_epoch", "all"), ("last_epoch", "embedding"), ("last_epoch", "all"),
             ("all_epochs", "embedding")}


def write_records(path, n: int = 100) -> list[str]:
    """``n`` records {"id": "doc-<topic>-<k>", "text": ...}: the first words of Python's reference docs (the
    built-in corpus, data/corpus.py ``pydoc_topics``), about 12 words each, as a JSONL file; their ids."""
    from pydoc_data.topics import topics

    records = []
    for name in sorted(topics):
        words = topics[name].split()
        records += [{"id": f"doc-{name}-{k}", "text": " ".join(words[12 * k:12 * k + 12])}
                    for k in range(min(3, len(words) // 12))]
    path.write_text("".join(json.dumps(record) + "\n" for record in records[:n]))
    return [record["id"] for record in records[:n]]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    preset = yaml.safe_load((REPO / "params/text.yaml").read_text())
    with tiny_project(tmp_path_factory.mktemp("text"), _merge(preset, TINY_TEXT)) as root:
        write_records(root / RECORDS)
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
    owners, forget = owners_in_outputs(project)  # the forget set, scores and proxies name each row's owner
    records = [json.loads(line)["id"] for line in (project / RECORDS).read_text().splitlines()]
    planted = sorted(set(owners) - set(records))
    assert len(planted) == len(canaries) and all(o.startswith("canary-") for o in planted)  # one per copy
    assert sorted(forget["example_id"]) == sorted(canaries["example_id"])  # kind canaries: every copy
    assert sorted(forget["owner_id"]) == planted
    source = json.loads((project / "data/source.json").read_text())
    assert (source["dataset"], source["path"], source["files"]) == ("text_jsonl", RECORDS, 1)
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
    result = subprocess.run([sys.executable, "-m", "memunlearn.cli", "check", "--params", str(bad)], cwd=project,
                            capture_output=True, text=True)  # in the project: data.path is relative to it
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("train.model: 'small_cnn' is an image model but data.dataset")


@pytest.fixture(scope="module")
def claims_repro(project, repro):
    return dvc(project, "repro", "claims", timeout=1800)


def test_the_ablation_grid_runs_on_text_and_writes_what_the_image_grid_writes(project, claims_repro):
    import pandas as pd

    assert sorted(ran_stages(claims_repro.stdout)) == sorted(GRID_STAGES)
    canaries = pd.read_csv(project / "data/prepared/canaries.csv")
    results = pd.read_csv(project / "results/grids/results.csv")
    ablations = results[results["grid"] == "ablations"]
    assert len(ablations) == 5 * 3 and set(zip(ablations["source"], ablations["layers"])) == ABLATIONS
    for seed in (0, 1, 2):
        folder = project / f"data/grids/ablations/exact-canaries-{seed}"
        forget = pd.read_csv(folder / "forget.csv")
        assert sorted(forget["example_id"]) == sorted(canaries["example_id"])  # kind canaries: every copy
        assert (folder / "model.pt").exists() and (folder / "outputs.json").exists()
    for name in ablations["method"] + "-exact-canaries-vanilla-" + ablations["seed"].astype(str):
        assert (project / f"data/grids/ablations/cells/{name}.pt").exists()
        assert json.loads((project / f"results/grids/ablations/{name}.json").read_text())["forget_size"] == len(canaries)
    assert {"exposure_1x", "exposure_8x", "original_exposure_8x", "oracle_exposure_8x", "val_ppl_change", "tow",
            "stored_mib", "dense_mib", "seconds"} <= set(results.columns)
    # a seed is a training seed: three different originals
    assert ablations.groupby("seed")["original_validation_ppl"].first().nunique() == 3
    # the memory each needs: the embedding stored as sparse rows, a fraction of all layers; nothing stored ahead
    # for last-epoch gradients
    stored = ablations[ablations["source"] == "first_epoch"].groupby("layers")["stored_mib"].first()
    assert 0 < stored["embedding"] < 0.5 * stored["all"]
    assert (ablations.loc[ablations["source"] == "last_epoch", "stored_mib"] == 0).all()
    # all-epochs gradients are stored as first-epoch ones are: the same rows of the embedding, the same bytes
    by_source = ablations[ablations["layers"] == "embedding"].groupby("source")["stored_mib"].first()
    assert by_source["all_epochs"] == by_source["first_epoch"]
    # the ascent forgets: F's next-token accuracy well below the original's on the canaries
    first = ablations[ablations["method"] == "first_epoch_ga"]
    assert (first["forget_acc"] < first["original_forget_acc"] - 0.2).all()
    assert set(results["grid"]) == {"ablations", "levels", "rum_compare", "entanglement", "levels_clean"}


def test_the_claims_report_on_text_has_a_verdict_for_findings_1_2_and_4(project, claims_repro):
    claims = json.loads((project / "metrics/claims.json").read_text())
    assert set(claims) == {"first_epoch_beats_all_epochs[embedding]", "first_epoch_beats_last_epoch[embedding]",
                           "first_epoch_beats_last_epoch[all]", "embedding_on_par_with_all_layers",
                           "embedding_halves_space", "calibration_keeps_validation"}
    assert all(c["verdict"] in ("supported", "contradicted", "inconclusive") for c in claims.values())
    assert claims["embedding_halves_space"]["verdict"] == "supported"  # exact bytes, the same on every seed
    report = (project / "results/claims.md").read_text()
    assert all(f"{name} | **{c['verdict']}**" in report for name, c in claims.items())


def test_memunlearn_report_reads_the_text_runs_summary_and_claims(project, claims_repro):
    from memunlearn.run_report import WIDTH

    out = subprocess.run([sys.executable, "-m", "memunlearn.cli", "report"], cwd=project, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert f"ToW {summary['tow']:.3f}" in out.stdout and f"canary AUROC {summary['planted_noise_auroc']:.3f}" \
        in out.stdout and "next-token accuracy" in out.stdout and "planted-noise" not in out.stdout
    if "validation_ppl" in summary:  # evaluate writes it where the corpus has a validation split
        assert f"validation perplexity {summary['validation_ppl']:.2f}" in out.stdout
    for name, claim in json.loads((project / "metrics/claims.json").read_text()).items():
        assert any(line.startswith(f"  {claim['verdict']}  ") and name in line.split() for line in lines), name


def test_a_text_grid_rerun_computes_nothing_again(project, claims_repro):
    assert ran_stages(dvc(project, "repro", "claims").stdout) == []
    forced = dvc(project, "repro", "--force", "--single-item", "grids")
    assert ran_stages(forced.stdout) == ["grids"]
    records = [json.loads(p.read_text()) for p in (project / "results/grids/ablations").glob("*.json")]
    assert len(records) == 15 and all(r["cached"] for r in records)
    for seed in (0, 1, 2):
        oracle = json.loads((project / f"data/grids/ablations/exact-canaries-{seed}/oracle.json").read_text())
        assert oracle["cached"] and oracle["original_cached"]


def test_forgetting_quality_and_the_figures_run_on_text(project, claims_repro):
    ran = ran_stages(dvc(project, "repro", "figures", timeout=1200).stdout)
    assert {"forgetting_quality", "figures"} <= set(ran) and "grids" not in ran and "train" not in ran
    quality = json.loads((project / "metrics/forgetting_quality.json").read_text())
    assert quality["method"] == "first_epoch_ga" and quality["copies"] == 3
    assert 0 <= quality["forget_score"] <= 1 and 0 <= quality["null_forget_score"] <= 1
    figures = project / "results/plots/figures"
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "evaluation.png", "exposure.png", "first_epoch_ga_ablations.png", "forgetting_quality_epsilon.png",
        "memorization_by_copies.png", "rum_compare_tow.png"]


def test_the_prefect_flow_runs_the_text_preset_as_a_dvc_experiment(project, claims_repro):
    """`python -m flows.pipeline --preset ...` as a call: the preset's keys become the experiment's
    overrides; the same params as the workspace's, so DVC's run cache restores every stage instead of rerunning."""
    from prefect.testing.utilities import prefect_test_harness

    from memunlearn.config import dotted_leaves
    from flows.pipeline import pipeline

    commit(project)
    preset = _merge(yaml.safe_load((REPO / "params/text.yaml").read_text()), TINY_TEXT)
    with prefect_test_harness(server_startup_timeout=180):
        ran = pipeline(repo_dir=str(project), overrides=dotted_leaves(preset), experiment="flow-text",
                       target="summary")
    assert sorted(ran) == sorted(ALWAYS_RUN + TEXT_STAGES)  # the fingerprints run every time
    params = experiments(project)["flow-text"]["data"]["params"]["params.yaml"]["data"]
    assert params["data"]["dataset"] == "text_jsonl" and params["train"]["model"] == "gpt2_micro"
    shown = experiments(project)["flow-text"]["data"]["metrics"]["metrics/summary.json"]["data"]
    assert shown["tow"] == json.loads((project / "metrics/summary.json").read_text())["tow"]
