"""End to end: the experiment grids under real DVC (a stage per grid), MLflow and Prefect, on a tiny project copy.

One temporary project is shared by the tests of this module, which run in
order: a first `dvc repro grids_report` runs the grids' stage, which
computes every forget set, oracle and cell of GRID once (the project is a copy of the
session's reproduced TINY project, tests/e2e_project.py, so what GRID
shares with it, the upstream stages and the other grids, is cached; `dvc
repro --dry --force` shows what a checkout with nothing cached runs), a
second runs nothing, adding a seed computes only the new forget set and
cells, an edit of a method no cell uses computes nothing and an edit of the
grid's method recomputes its cells, and the Prefect grids flow grows the
grid and rebuilds the summary.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from e2e_project import ALWAYS_RUN, commit, copied_project, dvc, experiments, set_params, stale  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = ["prepare", "train", "memorize", "proxies"]  # what the grids need of the pipeline
OTHER_GRIDS = ["levels", "rum_compare", "entanglement", "levels_clean"]  # TINY's one-cell grids, reported beside `ablations`
REPORT = ["grids_evaluate", "grids_report"]  # every cell scored against its oracle, then the tables
GRID = {"methods": ["neggrad_plus"], "group_scores": ["exact"], "kinds": ["low", "high"], "strategies": ["rum"],
        "seeds": [0], "partition": {"size": 30, "refine_score": "exact"}, "fixed_group_score": "", "device": "cpu"}


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` ran, but those that run every time (`sources`, e2e_project.py)."""
    return [s for s in re.findall(r"Running stage '([^']+)'", output) if s not in ALWAYS_RUN]


def cells(method="neggrad_plus", kinds=("low", "high"), strategies=("rum",), seeds=(0,)) -> list[str]:
    """The cells' names (their files under results/grids/ablations/, and their MLflow runs ``ablations_cell@<name>``)."""
    return [f"{method}-exact-{k}-{s}-{seed}" for k in kinds for s in strategies for seed in seeds]


def oracles(kinds=("low", "high"), seeds=(0,)) -> list[str]:
    """The forget sets' folders under data/grids/ablations/ (their MLflow runs: ``ablations_oracle@<name>``)."""
    return [f"exact-{k}-{seed}" for k in kinds for seed in seeds]


def cached(project: Path) -> dict[str, bool]:
    """Whether each forget set's oracle and each cell came from the caches in the grid stage's last run."""
    folder = project / "data/grids/ablations"
    return {**{p.parent.name: json.loads(p.read_text())["cached"] for p in folder.glob("*/oracle.json")},
            **{p.stem: json.loads(p.read_text())["cached"] for p in (project / "results/grids/ablations").glob("*.json")}}


@pytest.fixture(scope="module")
def project(reproduced_tiny_project, tmp_path_factory):
    """A copy of the session's reproduced TINY project with GRID as its ablations grid."""
    with copied_project(reproduced_tiny_project, tmp_path_factory.mktemp("ablations") / "project") as root:
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["ablations"] = GRID  # the whole section: the default grid's lists are not merged in
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        yield root


@pytest.fixture(scope="module")
def first_repro(project):
    return dvc(project, "repro", "grids_report")


def test_first_repro_runs_every_cell_once_and_writes_the_tables(reproduced_tiny_project, project, first_repro):
    # what `dvc repro grids_report` runs in a checkout with nothing cached: every stage it depends on, forced
    planned = ran(dvc(project, "repro", "--dry", "--force", "grids_report").stdout)
    assert set(planned[:len(UPSTREAM)]) == set(UPSTREAM)  # and not the pipeline's partition/oracle/unlearn/...
    assert planned[len(UPSTREAM):] == ["tune", "grids"] + REPORT  # tune: the tuned grid's values
    assert planned[-1] == "grids_report" and "oracle" not in planned and "unlearn" not in planned
    # the upstream stages and TINY's grids ran once, in the session's first repro of the project; this first repro
    # of GRID reruns the grids' stage, which computes each of GRID's oracles and cells once and loads the other
    # grids' runs from the caches, then the report
    assert set(UPSTREAM + ["grids"]) <= set(ran(reproduced_tiny_project.first_repro.stdout))
    assert ran(first_repro.stdout) == ["grids"] + REPORT
    assert cached(project) == dict.fromkeys(oracles() + cells(), False)
    for grid in OTHER_GRIDS:
        assert all(json.loads(p.read_text())["cached"] for p in (project / "results/grids" / grid).glob("*.json"))

    results = pd.read_csv(project / "results/grids/results.csv").query("grid == 'ablations'")
    assert results[["kind", "strategy", "seed"]].values.tolist() == [["low", "rum", 0], ["high", "rum", 0]]
    assert results["tow"].between(0, 1).all() and (results["oracle_tow"] == 1.0).all()
    assert (results["seconds"] > 0).all() and (results["oracle_seconds"] > 0).all()
    assert (results["forget_size"] == 30).all()
    summary = pd.read_csv(project / "results/grids/summary.csv")
    assert summary["grid"].tolist() == ["ablations", "ablations", "levels", "rum_compare", "entanglement",
                                      "levels_clean", "tuned"]
    assert (summary["n_seeds"] == 1).all()
    assert summary["tow_ci95"].isna().all()  # one seed: no interval, not a zero-width one
    assert (project / "results/plots/grids/ablations_tow.png").stat().st_size > 1000

    # the two kinds are different forget sets: low = least memorized, high = most (by exact scores)
    low = pd.read_csv(project / "data/grids/ablations/exact-low-0/forget.csv")
    high = pd.read_csv(project / "data/grids/ablations/exact-high-0/forget.csv")
    assert len(low) == len(high) == 30 and high["group_score"].min() >= low["group_score"].max()
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert lock["grids"]["params"]["params.yaml"]["ablations"]["kinds"] == ["low", "high"]


def test_dvc_metrics_show_the_summary(project, first_repro):
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]["metrics/grids.json"]["data"]["grids"]
    leaf = metrics["ablations"]["neggrad_plus"]["exact"]["high"]["rum"]
    assert leaf["n_seeds"] == 1 and 0 <= leaf["tow_mean"] <= 1


def test_second_repro_runs_nothing(project, first_repro):
    assert ran(dvc(project, "repro", "grids_report").stdout) == []
    assert stale(project, "--with-deps", "grids_report") == {}


def records(project: Path) -> dict[str, dict]:
    """Each cell's record but what says how this run got it (cached) and where it logged (its MLflow run)."""
    return {p.stem: {k: v for k, v in json.loads(p.read_text()).items() if k not in ("cached", "run_id")}
            for p in (project / "results/grids/ablations").glob("*.json")}


def test_adding_a_seed_computes_only_the_new_cells(project, first_repro):
    before = records(project)
    set_params(project, {"ablations": {"seeds": [0, 1]}})
    assert ran(dvc(project, "repro", "grids_report").stdout) == ["grids"] + REPORT
    assert cached(project) == {**dict.fromkeys(oracles(seeds=(0,)) + cells(seeds=(0,)), True),
                               **dict.fromkeys(oracles(seeds=(1,)) + cells(seeds=(1,)), False)}
    after = records(project)
    assert {k: after[k] for k in before} == before  # the seed-0 cells were loaded, not recomputed

    summary = pd.read_csv(project / "results/grids/summary.csv").query("grid == 'ablations'")
    assert (summary["n_seeds"] == 2).all() and summary["tow_ci95"].notna().all()
    results = pd.read_csv(project / "results/grids/results.csv").query("grid == 'ablations'")
    assert len(results) == 4 and sorted(set(results["seed"])) == [0, 1]
    row = summary.iloc[0]
    values = results[results["kind"] == row["kind"]]["tow"]
    assert row["tow_mean"] == pytest.approx(values.mean())
    assert row["tow_ci95"] == pytest.approx(math.tan(math.pi * 0.475) * values.std(ddof=1) / math.sqrt(2))


def test_a_methods_params_recompute_only_its_cells(project, first_repro):
    before = records(project)
    set_params(project, {"methods": {"finetune": {"lr": 0.02}}})  # no grid lists finetune: nothing recomputes
    assert "grids" in ran(dvc(project, "repro", "grids").stdout)
    assert all(cached(project).values()) and records(project) == before
    set_params(project, {"methods": {"neggrad_plus": {"lr": 0.02}}})  # every cell, no oracle
    dvc(project, "repro", "grids")
    assert cached(project) == {**dict.fromkeys(oracles(seeds=(0, 1)), True),
                               **dict.fromkeys(cells(seeds=(0, 1)), False)}
    set_params(project, {"methods": {"neggrad_plus": {"lr": 0.01}, "finetune": {"lr": 0.01}}})
    # back to the first setting: DVC's run cache restores that run's outputs, nothing runs but tune, whose
    # persistent study DVC never run-caches: it finds every trial in the study, computes none, writes the same best
    assert ran(dvc(project, "repro", "grids").stdout) == ["tune"]
    assert json.loads((project / "metrics/tune.json").read_text())["new_trials"] == 0
    assert records(project) == before


def test_prefect_grids_flow_runs_a_grown_grid_as_an_experiment_with_new_cells_only(project, first_repro):
    from prefect.testing.utilities import prefect_test_harness

    from flows.grids import grids

    commit(project)
    before = (project / "params.yaml").read_bytes()
    workspace_summary = (project / "results/grids/summary.csv").read_bytes()
    with prefect_test_harness(server_startup_timeout=180):  # Prefect waits 30 s: too short on a busy machine
        with pytest.raises(ValueError, match="bad grid: (.|\n)*ablations.methods: 'forgetall' has no methods"):
            grids(repo_dir=str(project), methods=["forgetall"])
        result = grids(repo_dir=str(project), kinds=["high"], strategies=["vanilla", "rum"], experiment="grown")

    did = [stage for stage, yes in result["ran"].items() if yes]
    assert did == ALWAYS_RUN + ["grids"] + REPORT  # sources runs every time; its output unchanged
    # in an order DVC picks: memorize and proxies are independent
    upstream = list(result["ran"])[len(ALWAYS_RUN):len(ALWAYS_RUN) + len(UPSTREAM)]
    assert set(upstream) == set(UPSTREAM)
    assert upstream.index("prepare") < upstream.index("train") < upstream.index("proxies")
    assert upstream.index("prepare") < upstream.index("memorize")
    assert (project / "params.yaml").read_bytes() == before  # the grid ran as a DVC experiment
    assert (project / "results/grids/summary.csv").read_bytes() == workspace_summary
    grown = experiments(project)["grown"]["data"]["params"]["params.yaml"]["data"]
    assert grown["ablations"]["strategies"] == ["vanilla", "rum"]

    summary = pd.DataFrame(result["summary"]).query("grid == 'ablations'")
    assert summary[["method", "kind", "strategy"]].values.tolist() == [["neggrad_plus", "high", "vanilla"],
                                                                      ["neggrad_plus", "high", "rum"]]
    assert (summary["n_seeds"] == 2).all() and summary["tow_ci95"].notna().all()

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # this project's store, not an earlier test's
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [r for r in runs if r.data.tags.get("memunlearn.stage") == "pipeline"
               and r.data.tags.get("memunlearn.group", "").startswith("prefect-")]
    assert [p.info.run_name for p in parents] == ["grown"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    grown_cells = cells(kinds=("high",), strategies=("vanilla", "rum"), seeds=(0, 1))
    runs = {r.data.tags["memunlearn.stage"]: r for r in children}
    assert {name for name in runs if name.startswith("ablations") or name in REPORT} == {
        *(f"ablations_oracle@{o}" for o in oracles(("high",), (0, 1))), *(f"ablations_cell@{c}" for c in grown_cells),
        *REPORT}
    assert "grids" in runs  # and the other grids' cells, loaded from the caches, under the same parent:
    assert all(any(name.startswith(f"{grid}_cell@") for name in runs) for grid in OTHER_GRIDS)
    assert all(r.data.tags["memunlearn.dvc_experiment"] == "grown" for r in children)
    for name in grown_cells:  # the rum cells came from the caches, the vanilla ones were computed
        assert runs[f"ablations_cell@{name}"].data.metrics["cached"] == float("-vanilla-" not in name), name
    cell = runs[f"ablations_cell@{grown_cells[0]}"]
    assert {d.dataset.name for d in cell.inputs.dataset_inputs} == {"F", "R", "T"}  # each cell's own forget set
    import dvc.api

    results = pd.read_csv(io.StringIO(dvc.api.read("results/grids/results.csv", repo=str(project), rev="grown")))
    top = results.query("grid == 'ablations' and kind == 'high'").sort_values("tow").iloc[-1]
    best = mlflow.tracking.MlflowClient().get_model_version_by_alias("memunlearn-ablations-exact-high", "best-tow")
    assert (best.tags["strategy"], best.tags["seed"]) == (top["strategy"], str(top["seed"]))  # the highest ToW


def test_an_evaluation_setting_rescores_every_cell_without_unlearning_again(project, first_repro):
    """Issue 12 item 5: cells keep their outputs, so only the scoring and the reports rerun."""
    before = pd.read_csv(project / "results/grids/results.csv")
    set_params(project, {"evaluate": {"mia_feature": "correctness"}})
    try:
        assert ran(dvc(project, "repro", "grids_report").stdout) == REPORT
        after = pd.read_csv(project / "results/grids/results.csv")
        assert after["forget_acc"].tolist() == before["forget_acc"].tolist()  # the same unlearned models
        assert after["seconds"].tolist() == before["seconds"].tolist()  # not unlearned again
    finally:
        set_params(project, {"evaluate": {"mia_feature": "true_prob"}})
        dvc(project, "repro", "grids_report")
