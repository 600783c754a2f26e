"""End to end: the real DVC pipeline, MLflow store and Prefect flow on a tiny copy of the project.

One temporary project is shared by the tests of this module, which run in
order: a first `dvc repro` (the session's, run from scratch on TINY's params:
the project is a copy of it, tests/e2e_project.py), a no-op second one, a param
change that reruns only unlearn + evaluate, the Prefect flow, and bad input.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from e2e_project import (ALWAYS_RUN, GRID_RUNS, GRID_STAGES, STAGES, commit, copied_project, dvc,  # tests/ is on
                         experiments, ran_stages, set_params, stale)  # sys.path under pytest (no __init__.py)

pytestmark = pytest.mark.e2e

FIGURES = ["memorized_examples.png", "evaluation.png", "rum_compare_tow.png", "forgetting_quality_epsilon.png"]


@pytest.fixture(scope="module")
def project(reproduced_tiny_project, tmp_path_factory):
    """This module's copy of the session's reproduced TINY project (tests/e2e_project.py)."""
    with copied_project(reproduced_tiny_project, tmp_path_factory.mktemp("pipeline") / "project") as root:
        yield root


@pytest.fixture(scope="module")
def first_repro(reproduced_tiny_project, project):
    """The first `dvc repro` of the project, from scratch (the session's, which ``project`` copies)."""
    return reproduced_tiny_project.first_repro


def test_first_repro_runs_every_stage_and_writes_outputs(project, first_repro):
    assert sorted(ran_stages(first_repro.stdout)) == sorted(STAGES + GRID_STAGES)
    import pandas as pd

    scores = pd.read_parquet(project / "data/memorize/scores.parquet")
    assert len(scores) == 500 and {"mem", "mem_se", "n_in", "n_out"} <= set(scores.columns)
    assert (scores["n_in"] + scores["n_out"] == 3).all()
    assert len(list((project / "data/memorize_store").glob("*/model_*.npz"))) == 3
    influence = pd.read_parquet(project / "data/memorize/influence.parquet")
    assert len(influence) == 160 * 5 and influence["rank"].max() == 5  # 200 test examples, 20% held out: validation
    summary = pd.read_csv(project / "results/grids/summary.csv")
    assert summary["grid"].tolist() == ["ablations", "levels", "rum_compare", "entanglement", "levels_clean", "tuned"]
    assert summary["tow_mean"].between(0, 1).all()
    forget = pd.read_csv(project / "data/partition/forget.csv")
    assert len(forget) == 30 and set(forget["subset"]) == {"low", "mid", "high"}
    results = pd.read_csv(project / "results/evaluation.csv")
    assert results["model"].tolist() == ["original", "unlearned", "retrain"]
    assert results.set_index("model").loc["retrain", "tow"] == 1.0
    study = pd.read_csv(project / "results/proxy_study.csv")
    assert set(study["proxy"]) >= {"confidence", "loss_curvature", "holdout_retrain", "final_margin"}
    assert len(list((project / "results/plots/proxy_vs_exact").glob("*.png"))) == len(study)
    claims = pd.read_csv(project / "results/claims.csv")
    assert {"claim", "effect", "ci_low", "ci_high", "verdict"} <= set(claims.columns)
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive", "not run"}
    assert claims.set_index("claim").loc["rum_beats_shuffle", "verdict"] == "not run"  # TINY has no shuffle cell
    assert (project / "results/claims.md").read_text().startswith("# Claims tested on this run")
    partition = json.loads((project / "metrics/partition.json").read_text())
    assert sum(partition["class_histogram"].values()) == 30 and 0 < partition["largest_class_share"] <= 1
    assert set(partition["entanglement_kinds_es"]) == {"low", "mid", "high"}
    assert (project / "dvc.lock").exists()
    assert sorted(p.name for p in (project / "results/plots/figures").glob("*.png")) == sorted(FIGURES)
    assert all((project / "results/plots/figures" / name).stat().st_size > 5000 for name in FIGURES)


def test_dvc_plots_declare_the_csv_series_and_the_figures(project, first_repro):
    shown = json.loads(dvc(project, "plots", "show", "--json").stdout)
    assert {"training history", "memorization convergence", "proxy study", "grids summary"} <= set(shown["data"])
    assert {f"results/plots/figures/{name}" for name in FIGURES} <= set(shown["data"])
    assert not shown.get("errors")


def test_metrics_show_lists_tow_mia_accuracies_and_proxy_correlations(project, first_repro):
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    metrics = {}
    for path_metrics in shown[""]["data"].values():
        metrics |= path_metrics["data"]
    unlearned = metrics["unlearned"]
    for key in ("tow", "tow_mia", "mia", "forget_acc", "retain_acc", "test_acc", "forget_acc_high"):
        assert key in unlearned, key
    assert 0 <= unlearned["tow"] <= 1
    for proxy in ("confidence", "max_conf", "entropy", "binary_acc", "loss_curvature", "holdout_retrain"):
        assert {"spearman", "pearson", "precision_at_n", "cost_fraction_of_exact"} <= set(metrics[proxy])
    assert metrics["rum_beats_shuffle"]["verdict"] == "not run" and "largest_class_share" in metrics
    summary = shown[""]["data"]["metrics/summary.json"]["data"]  # the headline, flat
    evaluate = shown[""]["data"]["metrics/evaluate.json"]["data"]["unlearned"]
    memorize = shown[""]["data"]["metrics/memorize.json"]["data"]
    assert {k: summary[k] for k in ("tow", "tow_mia", "forget_acc", "retain_acc", "test_acc")} == {
        k: evaluate[k] for k in ("tow", "tow_mia", "forget_acc", "retain_acc", "test_acc")}
    assert summary["planted_noise_auroc"] == memorize["planted_noise_auroc"]
    assert summary.get("score_stability") == memorize.get("spearman_split_halves")  # null at TINY's K = 3


def test_metrics_are_versioned_in_git_and_data_is_not(project, first_repro):
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "metrics/summary.json", "metrics/memorize.json",
                              "data/memorize/scores.parquet"], cwd=project, capture_output=True, text=True).stdout
    assert ignored.split() == ["data/memorize/scores.parquet"]


def test_mlflow_holds_one_parent_run_with_a_child_per_stage_and_the_models(project, first_repro):
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.get_experiment_by_name("memunlearn")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    parents = [r for r in runs if r.data.tags.get("memunlearn.stage") == "pipeline"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["memunlearn.stage"] for r in children) == sorted(STAGES + GRID_STAGES + GRID_RUNS)
    by_stage = {r.data.tags["memunlearn.stage"]: r for r in children}
    assert "unlearned.tow" in by_stage["evaluate"].data.metrics
    assert all(r.data.tags.get("git_commit") for r in children)
    assert all(r.info.status == "FINISHED" for r in [*children, parents[0]])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    for stage in ("train", "oracle", "memorize"):  # a run spans its stage: at least the seconds it measured
        run = by_stage[stage].info
        assert run.end_time - run.start_time >= 1000 * json.loads((project / f"metrics/{stage}.json").read_text())[
            "seconds"]
    epochs = mlflow.tracking.MlflowClient().get_metric_history(by_stage["train"].info.run_id, "train_loss")
    assert [m.step for m in epochs] == [0, 1]  # TINY trains 2 epochs; each logged once, as it ended
    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert {m.name for m in models} >= {"original_model", "unlearned_model", "oracle_model"}
    assert not any(p.name.startswith("mlruns") for p in project.glob("data/**/*"))  # the store is not a DVC output

    client = mlflow.tracking.MlflowClient()
    forget = pd.read_csv(project / "data/partition/forget.csv")["example_id"]
    inputs = {d.dataset.name: d.dataset.digest for d in by_stage["unlearn"].inputs.dataset_inputs}
    assert set(inputs) == {"F", "R"}
    unlearned = client.get_model_version_by_alias("memunlearn-unlearned", "latest")
    assert (unlearned.tags["method"], unlearned.tags["strategy"], unlearned.tags["forget_kind"]) == (
        "neggrad_plus", "rum_f", "mix")
    assert unlearned.tags["forget_digest"] == inputs["F"] and len(forget) == 30
    for role in ("original", "oracle"):
        assert client.get_model_version_by_alias(f"memunlearn-{role}", "latest")
    best = client.get_model_version_by_alias("memunlearn-ablations-exact_prob-high", "best-tow")
    assert (best.tags["method"], best.tags["strategy"], best.tags["seed"]) == ("neggrad_plus", "rum_f", "0")
    figures = [a.path for a in mlflow.artifacts.list_artifacts(run_id=by_stage["figures"].info.run_id)]
    assert sorted(figures) == sorted(FIGURES)


def test_second_repro_runs_nothing(project, first_repro):
    again = dvc(project, "repro")
    assert ran_stages(again.stdout) == []
    assert stale(project) == {}


def test_git_keeps_only_data_readme_of_data_and_stays_clean_through_a_repro(project, first_repro):
    commit(project, "after the first repro")
    git = lambda *args: subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,  # noqa: E731
                                       check=True).stdout
    assert git("ls-files", "data").split() == ["data/README.md"]
    assert ran_stages(dvc(project, "repro").stdout) == [] and git("status", "--porcelain") == ""


def test_memunlearn_report_prints_the_runs_headline_and_every_claim_within_120_characters(project, first_repro):
    from memunlearn.run_report import WIDTH

    out = subprocess.run([sys.executable, "-m", "memunlearn.cli", "report"], cwd=project, capture_output=True,
                         text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert f"ToW {summary['tow']:.3f}" in out.stdout and f"ToW-MIA {summary['tow_mia']:.3f}" in out.stdout
    assert f"planted-noise AUROC {summary['planted_noise_auroc']:.3f}" in out.stdout
    claims = pd.read_csv(project / "results/claims.csv")
    assert len(claims) >= 5
    for claim, verdict in zip(claims["claim"], claims["verdict"]):  # a verdict may be two words: "not run"
        assert any(line.startswith(f"  {verdict}  ") and claim in line.split() for line in lines), claim
    assert "/#/experiments/" in out.stdout and "/runs" in out.stdout  # the project's MLflow store has its runs


def test_growing_k_under_dvc_trains_only_the_new_subset_model(project, first_repro):
    set_params(project, {"memorize": {"num_models": 4}})
    assert ran_stages(dvc(project, "repro", "memorize").stdout) == ["memorize"]  # downstream: not this test's
    metrics = json.loads((project / "metrics/memorize.json").read_text())
    assert (metrics["models_trained"], metrics["models_reused"]) == (1, 3)
    assert len(list((project / "data/memorize_store").glob("*/model_*.npz"))) == 4
    set_params(project, {"memorize": {"num_models": 3}})  # shrinking K back trains nothing and gives K=3's scores:
    ran = ran_stages(dvc(project, "repro").stdout)    # only what reads memorize's metrics (its cost) reruns
    metrics = json.loads((project / "metrics/memorize.json").read_text())
    assert (metrics["models_trained"], metrics["models_reused"]) == (0, 3)
    assert "memorize" in ran and not {"proxies", "partition", "oracle", "unlearn"} & set(ran), ran


def test_changing_an_unlearning_param_reruns_only_what_unlearns(project, first_repro):
    set_params(project, {"unlearn": {"seed": 1}})
    # evaluate follows unlearn's outputs; forgetting_quality unlearns its own copies with the same settings
    assert set(stale(project)) == {"unlearn", "forgetting_quality"}
    assert ran_stages(dvc(project, "repro").stdout) == ["unlearn", "evaluate", "summary", "forgetting_quality",
                                                        "figures"]


def test_prefect_flow_runs_stages_in_the_workspace_and_overrides_as_a_dvc_experiment(project, first_repro):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    commit(project)
    before = (project / "params.yaml").read_bytes()
    with prefect_test_harness(server_startup_timeout=180):  # Prefect waits 30 s: too short on a busy machine
        forced = pipeline(repo_dir=str(project), force=["evaluate"])
        # an override that reruns one cheap stage: the claims' margin (the flow's path is the same for any param)
        ran = pipeline(repo_dir=str(project), overrides={"claims.on_par_margin": 0.1}, experiment="flow-margin")
    assert sorted(forced) == sorted(ALWAYS_RUN + STAGES + GRID_STAGES) == sorted(ran)
    # sources (the fingerprints) runs every time; its output unchanged, nothing after it reruns
    assert [s for s, did in forced.items() if did] == ALWAYS_RUN + ["evaluate"]
    assert [s for s, did in ran.items() if did] == ALWAYS_RUN + ["claims"]
    assert (project / "params.yaml").read_bytes() == before  # the experiment ran in a temporary copy

    params = experiments(project)["flow-margin"]["data"]["params"]["params.yaml"]["data"]
    assert params["claims"]["on_par_margin"] == 0.1

    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    flow_parents = {r.info.run_name: r for r in runs if r.data.tags.get("memunlearn.stage") == "pipeline"
                    and r.data.tags.get("memunlearn.group", "").startswith("prefect-")}
    assert len(flow_parents) == 2 and "flow-margin" in flow_parents
    tagged = {r.data.tags["memunlearn.stage"] for r in runs
              if r.data.tags.get("memunlearn.dvc_experiment") == "flow-margin"}
    assert tagged == {"pipeline", "claims"}


def test_missing_upstream_output_names_the_command_to_run(project, first_repro):
    oracle = project / "data/oracle"
    backup = project / "oracle.bak"
    shutil.move(oracle, backup)
    try:
        result = subprocess.run([sys.executable, "stages/evaluate.py"], cwd=project, capture_output=True, text=True)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1].endswith("is missing; run `dvc repro oracle` first")
    finally:
        shutil.move(backup, oracle)


def test_bad_input_fails_in_one_line_and_leaves_no_stale_output(project, first_repro):
    set_params(project, {"unlearn": {"method": "forgetall"}})
    failed = dvc(project, "repro", check=False)
    assert failed.returncode != 0
    errors = [line for line in (failed.stdout + failed.stderr).splitlines() if line.startswith("error: ")]
    assert errors and "unknown unlearning method 'forgetall'; choose one of:" in errors[0]
    assert "neggrad_plus" in errors[0]
    assert not (project / "data/unlearn/model.pt").exists()  # DVC removed the old output before the stage ran

    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", order_by=["start_time DESC"])
    failed = next(r for r in runs if r.data.tags.get("memunlearn.stage") == "unlearn")
    assert failed.info.status == "FAILED" and "forgetall" in failed.data.tags["memunlearn.error"]
    parent = next(r for r in runs if r.info.run_id == failed.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"
    set_params(project, {"unlearn": {"method": "neggrad_plus"}})


READERS_OF_D = ("train", "memorize", "proxies", "partition", "oracle", "unlearn", "evaluate", "grids", "grids_evaluate",
                "forgetting_quality")


def test_ids_a_deletion_request_forgot_enter_no_later_training(project, first_repro):
    """The ledger is a dep of every stage that reads D (last in this module: it leaves the pipeline stale): a
    forgotten id makes each stale, and the original trained again never sees it. The entry names the owner's
    ids (TINY's ids.csv: ``digit-<row>``), which the stages map to example ids through the prepared map."""
    from memunlearn.data.owner_ids import load_owner_ids
    from memunlearn.requests import ledger

    before = pd.read_parquet(project / "data/train/learning_events.parquet")["example_id"]
    forgotten = [int(i) for i in sorted(before)[:3]]
    owner_ids = load_owner_ids(project / "data/prepared").loc[forgotten].tolist()
    assert all(o.startswith("digit-") for o in owner_ids)  # not the example ids: the map is what finds them
    ledger.append(project / "requests/ledger.jsonl", {"kind": "forget", "request_id": "r1", "ids": forgotten,
                                                       "owner_ids": owner_ids})
    stale_now = stale(project)
    assert set(READERS_OF_D) <= set(stale_now) and "prepare" not in stale_now
    dvc(project, "repro", "train")
    after = pd.read_parquet(project / "data/train/learning_events.parquet")["example_id"]
    assert not set(forgotten) & set(after) and len(after) == len(before) - len(forgotten)
