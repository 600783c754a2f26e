"""The tune stage in a real DVC project (a copy of the session's reproduced TINY project, tests/e2e_project.py):
its study persists across `dvc repro`, more trials compute only the new ones, and the tuned grid's cell and the
tuned claims rows come out of the same repro."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from e2e_project import copied_project, dvc, set_params  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e
ARM = "neggrad_plus/rum_f"  # TINY's tuned grid: one arm, one held-out seed


@pytest.fixture(scope="module")
def project(reproduced_tiny_project, tmp_path_factory):
    with copied_project(reproduced_tiny_project, tmp_path_factory.mktemp("tune") / "project") as root:
        yield root


def trials(root) -> dict[str, int]:
    with sqlite3.connect(root / "data/tune/study.db") as con:
        return dict(con.execute("SELECT s.study_name, COUNT(t.trial_id) FROM studies s JOIN trials t "
                                "ON t.study_id = s.study_id WHERE t.state = 'COMPLETE' GROUP BY s.study_name"))


def test_the_first_repro_tunes_each_arm_and_runs_its_tuned_cell(project):
    best = json.loads((project / "data/tune/best.json").read_text())["arms"][ARM]
    assert best["trials"] == 2 and best["tow"] >= best["default_tow"]
    assert set(best["subset_params"]) == {"low", "mid", "high"}  # RUM^F: per-step hyperparameters
    assert all(1 <= step["epochs"] <= 2 for step in best["subset_params"].values())  # TINY's range
    assert trials(project) == {best["study"]: 2}
    results = pd.read_csv(project / "results/grids/results.csv")
    assert len(results[results["grid"] == "tuned"]) == 1
    claims = pd.read_csv(project / "results/claims.csv").set_index("claim")
    row = claims.loc["tuned_rum_beats_vanilla_neggrad_plus"]  # TINY's grid has no vanilla arm
    assert row["verdict"] == "not run" and "tuned.strategies" in row["needs"]


def test_more_trials_resume_the_persisted_study(project):
    before = json.loads((project / "data/tune/best.json").read_text())["arms"][ARM]
    set_params(project, {"tune": {"trials": 3}})
    dvc(project, "repro", "tune")
    metrics = json.loads((project / "metrics/tune.json").read_text())
    assert (metrics["trials"], metrics["new_trials"]) == (3, 1)  # only the new trial ran
    assert trials(project) == {before["study"]: 3}
    set_params(project, {"tune": {"spaces": {"neggrad_plus": {"lr": {"low": 0.002, "high": 0.04}}}}})
    dvc(project, "repro", "tune")
    metrics = json.loads((project / "metrics/tune.json").read_text())
    assert (metrics["trials"], metrics["new_trials"]) == (3, 3)  # a changed space is a new study
    assert sorted(trials(project).values()) == [3, 3]
