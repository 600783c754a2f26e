"""The tune stage's studies (src/memunlearn/experiments/tune.py): real Optuna studies in a SQLite storage."""
from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

import pytest

from memunlearn.config import ConfigError, from_params
from memunlearn.experiments.grids import tuned_plan, tuned_values
from memunlearn.experiments.tune import TuneConfig, arm_space, arms_in_order, tune_arm
from memunlearn.grid import GridConfig

BLOCKS = {"neggrad_plus": {"alpha": 0.99, "lr": 0.01, "epochs": 5, "batch_size": 64},
          "salun": {"threshold": 0.5, "lr": 0.013, "epochs": 10, "batch_size": 64},
          "finetune": {"lr": 0.01, "epochs": 5, "batch_size": 64}}
SPACES = {"neggrad_plus": {"alpha": {"low": 0.9, "high": 0.999}, "lr": {"low": 0.001, "high": 0.05, "log": True},
                           "epochs": {"low": 2, "high": 8}},
          "finetune": {"lr": {"low": 0.002, "high": 0.05, "log": True}},
          "salun": {"threshold": {"low": 0.3, "high": 0.7}}}
IDENTITY = {"runs": ["forget set and original of seed 100"]}


def config(**changes) -> TuneConfig:
    return from_params(TuneConfig, {"spaces": SPACES, **changes}, "tune")


class Scorer:
    """A ToW-like score peaked at lr 0.02, alpha 0.95, recording every point it scores."""

    def __init__(self):
        self.calls = []

    def __call__(self, values):
        self.calls.append(values)
        block = values["block"]
        return 1.0 - abs(block["lr"] - 0.02) - abs(block.get("alpha", 0.95) - 0.95)


def study_trials(db) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT s.study_name, COUNT(t.trial_id) FROM studies s "
                                "JOIN trials t ON t.study_id = s.study_id GROUP BY s.study_name").fetchall())


def test_a_rerun_with_more_trials_computes_only_the_new_ones_and_starts_from_the_defaults(tmp_path):
    db = tmp_path / "study.db"
    space = arm_space("neggrad_plus", "vanilla", config().spaces, BLOCKS)
    first = Scorer()
    result = tune_arm(f"sqlite:///{db}", "neggrad_plus", "vanilla", space, IDENTITY, 3, 0, first)
    assert len(first.calls) == 3 and (result.trials, result.new_trials) == (3, 3)
    assert first.calls[0]["block"] == {"alpha": 0.99, "lr": 0.01, "epochs": 5}  # trial 0: methods.neggrad_plus
    assert result.default_tow == pytest.approx(1.0 - 0.01 - 0.04)
    assert result.tow >= result.default_tow

    again = Scorer()
    resumed = tune_arm(f"sqlite:///{db}", "neggrad_plus", "vanilla", space, IDENTITY, 5, 0, again)
    assert len(again.calls) == 2 and (resumed.trials, resumed.new_trials) == (5, 2)
    assert resumed.study == result.study and study_trials(db) == {result.study: 5}
    seen = {tuple(sorted(c["block"].items())) for c in first.calls}
    assert not any(tuple(sorted(c["block"].items())) in seen for c in again.calls)  # new points, not a replay
    assert resumed.tow >= result.tow

    none = Scorer()
    assert tune_arm(f"sqlite:///{db}", "neggrad_plus", "vanilla", space, IDENTITY, 5, 0, none).new_trials == 0
    assert none.calls == []


def test_a_changed_space_or_forget_set_is_a_new_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = arm_space("neggrad_plus", "vanilla", config().spaces, BLOCKS)
    base = tune_arm(storage, "neggrad_plus", "vanilla", space, IDENTITY, 2, 0, Scorer())
    narrower = {**SPACES, "neggrad_plus": {**SPACES["neggrad_plus"], "lr": {"low": 0.005, "high": 0.05, "log": True}}}
    changed = Scorer()
    other = tune_arm(storage, "neggrad_plus", "vanilla", arm_space("neggrad_plus", "vanilla",
                     config(spaces=narrower).spaces, BLOCKS), IDENTITY, 2, 0, changed)
    assert other.study != base.study and len(changed.calls) == 2
    moved = Scorer()
    elsewhere = tune_arm(storage, "neggrad_plus", "vanilla", space, {"runs": ["another forget set"]}, 2, 0, moved)
    assert elsewhere.study not in (base.study, other.study) and len(moved.calls) == 2
    assert set(study_trials(tmp_path / "study.db").values()) == {2}


def test_rum_steps_are_searched_per_step_and_the_budget_comes_from_rum_f():
    spaces = config().spaces
    rum_f = arm_space("neggrad_plus", "rum_f", spaces, BLOCKS)
    assert set(rum_f.ranges) == {f"{s}.{k}" for s in ("low", "mid", "high") for k in ("alpha", "lr", "epochs")}
    assert rum_f.values({"low.lr": 0.02, "high.epochs": 7}) == {"block": {}, "subset_params": {
        "low": {"lr": 0.02}, "high": {"epochs": 7}}}
    assert rum_f.defaults["high.epochs"] == 5 and rum_f.defaults["low.alpha"] == 0.99
    capped = arm_space("neggrad_plus", "vanilla", config(spaces={"neggrad_plus": {
        "epochs": {"low": 1, "high": 3}, "lr": {"low": 0.02, "high": 0.05}}}).spaces, BLOCKS)
    assert capped.defaults == {"epochs": 3, "lr": 0.02}  # trial 0: the untuned 5 epochs and lr 0.01, clipped
    full = arm_space("neggrad_plus", "rum", spaces, BLOCKS)  # low: none, mid: finetune, high: salun
    assert full.ranges.keys() == {"mid.lr", "high.threshold"}
    assert full.defaults == {"mid.lr": 0.01, "high.threshold": 0.5}
    budget = arm_space("neggrad_plus", "vanilla_budget", spaces, BLOCKS,
                       budget={"low": {"epochs": 2, "lr": 0.1}, "mid": {"epochs": 3}, "high": {"epochs": 4}})
    assert set(budget.ranges) == {"alpha", "lr"}  # the epochs are the budget's
    values = budget.values({"alpha": 0.95, "lr": 0.02})
    assert values["subset_params"] == {"low": {"epochs": 2}, "mid": {"epochs": 3}, "high": {"epochs": 4}}
    plan = tuned_plan("neggrad_plus", "vanilla_budget", values, BLOCKS, 0, "cpu")
    assert plan.step_config("neggrad_plus", None).alpha == 0.95
    assert sum(plan.step_config("neggrad_plus", s).epochs for s in ("low", "mid", "high")) == 9
    assert arms_in_order([("m", "vanilla_budget"), ("m", "vanilla"), ("m", "rum_f")]) == [
        ("m", "vanilla"), ("m", "rum_f"), ("m", "vanilla_budget")]


def test_bad_tune_params_fail_in_one_line_naming_the_key():
    with pytest.raises(ConfigError) as bad_key:
        config(spaces={"neggrad_plus": {"lrr": {"low": 0.001, "high": 0.1}}}).check(BLOCKS, [0, 1, 2])
    assert str(bad_key.value).count("\n") == 0 and "tune.spaces.neggrad_plus.lrr" in str(bad_key.value)
    assert "alpha" in str(bad_key.value)  # the keys it could be
    with pytest.raises(ConfigError, match=r"tune.spaces.neggrad_plus.lr: low 0.1 must be below high 0.01"):
        config(spaces={"neggrad_plus": {"lr": {"low": 0.1, "high": 0.01}}})
    with pytest.raises(ConfigError, match=r"tune.spaces.neggrad_plus.lr: a log range needs low > 0"):
        config(spaces={"neggrad_plus": {"lr": {"low": 0.0, "high": 0.01, "log": True}}})
    with pytest.raises(ConfigError, match=r"tune.seeds: \[1\] are also tuned.seeds"):
        config(seeds=[1, 100]).check(BLOCKS, [0, 1, 2])
    with pytest.raises(ConfigError, match="no tuned values for salun/rum_f"):
        tuned_values({"arms": {}}, "salun", "rum_f")


def test_first_method_only_runs_full_rum_once():
    grid = from_params(GridConfig, {"methods": ["neggrad_plus", "salun"], "kinds": ["mix"], "seeds": [0],
                                    "strategies": ["vanilla", "rum"], "first_method_only": ["rum"]}, "tuned")
    cells = grid.cells("tuned")
    assert list(zip(cells["method"], cells["strategy"])) == [("neggrad_plus", "vanilla"), ("neggrad_plus", "rum"),
                                                            ("salun", "vanilla")]
    with pytest.raises(ConfigError, match="tuned.first_method_only"):
        from_params(GridConfig, {"strategies": ["vanilla"], "first_method_only": ["rum"]}, "tuned")


@pytest.mark.parametrize("score", ["exact_prob", "confidence"])
def test_tuning_forget_sets_lie_outside_the_held_out_ones(score):
    """A score's mix set is its extremes: another seed alone picks nearly the same examples, so the tuning forget
    set is chosen among the examples outside every held-out set."""
    from memunlearn.experiments.tune import without_scores
    from memunlearn.partition import PartitionConfig, ScoreSources, choose_forget_set

    rng = np.random.default_rng(0)
    ids = np.arange(300)
    mem = np.round(rng.uniform(0, 1, len(ids)), 2)  # ties: the seed breaks them
    sources = ScoreSources(pd.DataFrame({"example_id": ids, "mem": mem, "mem_prob": mem}),
                           pd.DataFrame({"example_id": ids, "confidence": mem}), pd.Series(ids % 10, index=ids))

    def chosen(seed, among):
        cfg = PartitionConfig(size=30, group_score=score, refine_score=score, seed=seed)
        return set(choose_forget_set(cfg, among)["example_id"])

    held_out = chosen(0, sources) | chosen(1, sources)
    assert len(chosen(100, sources) & held_out) >= 20  # what a seed alone would tune on
    tuning = chosen(100, without_scores(sources, held_out))
    assert len(tuning) == 30 and not tuning & held_out
    assert sources.exact["mem_prob"].notna().all()  # the stage's own sources are left as they were
