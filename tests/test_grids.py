"""The grids' aggregation: grid config, tidy table, t-based CIs, metrics, plot (experiments/grid_report.py)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from memunlearn.config import from_params
from memunlearn.evaluation.stats import mean_ci
from memunlearn.experiments.grid_report import (GROUP, KEYS, GridConfig, plot_metric, results_table, summarize,
                                         summary_metrics)
from memunlearn.partition import FORGET_KINDS
from memunlearn.registry import UnknownNameError
from memunlearn.unlearning import METHODS, STRATEGIES

GRID = {"methods": ["neggrad_plus", "finetune"], "group_scores": ["exact"], "kinds": ["low", "high"],
        "strategies": ["vanilla", "rum"], "seeds": [0, 1, 2], "partition": {"size": 30}}


def config(**changes) -> GridConfig:
    return from_params(GridConfig, {**GRID, **changes}, "ablations")


def record(grid="ablations", method="neggrad_plus", group_score="exact", kind="low", strategy="rum", seed=0, tow=0.9,
           **extra):
    """A cell record as stages/grids.py writes it."""
    unlearned = {"forget_acc": 0.5, "retain_acc": 0.95, "test_acc": 0.9, "forget_acc_low": 1.0, "mia": 0.4,
                 "tow": tow, "tow_mia": 0.8}
    oracle = {**unlearned, "tow": 1.0, "tow_mia": 1.0}
    return {"grid": grid, "method": method, "group_score": group_score, "kind": kind, "strategy": strategy, "seed": seed,
            "unlearned": unlearned, "oracle": oracle, "seconds": 2.0 + seed, "oracle_seconds": 10.0,
            "forget_size": 30, "steps": 3, **extra}


def full_grid(cfg: GridConfig) -> list[dict]:
    rng = np.random.default_rng(0)
    return [record(*cell, tow=float(rng.uniform(0.5, 1.0))) for cell in cfg.cells().itertuples(index=False)]


# ---- confidence intervals ----------------------------------------------------

def test_t_based_ci_equals_a_hand_computation():
    values = [0.5, 0.7, 0.9]
    # mean 0.7; sample sd sqrt(((-.2)^2 + 0 + .2^2) / 2) = 0.2; Student's t with df=2 has the closed-form
    # quantile t_p = (2p - 1) / sqrt(2p(1 - p)): t_0.975 = 0.95 / sqrt(0.04875) = 4.3027 (the t table's 4.303)
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert t == pytest.approx(4.303, abs=5e-4)
    mean, half, n = mean_ci(values)
    assert n == 3 and mean == pytest.approx(0.7)
    assert half == pytest.approx(t * 0.2 / math.sqrt(3), rel=1e-9)  # 0.4968...
    # wider than the normal interval, which would understate the spread of 3 seeds
    assert half > 1.96 * 0.2 / math.sqrt(3)


def test_ci_of_two_values_uses_df_1():
    mean, half, n = mean_ci([1.0, 3.0])  # sd = sqrt(2); df=1 is Cauchy: t_p = tan(pi (p - 1/2)) = 12.706
    assert (mean, n) == (2.0, 2)
    assert half == pytest.approx(math.tan(math.pi * 0.475) * math.sqrt(2) / math.sqrt(2), rel=1e-9)


def test_a_single_seed_gives_a_nan_ci_not_zero():
    mean, half, n = mean_ci([0.8])
    assert (mean, n) == (0.8, 1) and math.isnan(half)
    cfg = config(seeds=[0])
    summary = summarize(results_table(full_grid(cfg), cfg))
    assert (summary["n_seeds"] == 1).all()
    assert summary["tow_ci95"].isna().all() and summary["tow_ci_low"].isna().all()
    assert summary["tow_mean"].notna().all()


def test_nan_values_are_left_out_of_the_ci_and_no_values_give_nan():
    mean, half, n = mean_ci([0.5, float("nan"), 0.9, 0.7])
    assert n == 3 and mean == pytest.approx(0.7) and half == pytest.approx(mean_ci([0.5, 0.7, 0.9])[1])
    assert all(math.isnan(v) for v in mean_ci([])[:2]) and mean_ci([])[2] == 0


def test_identical_seeds_give_a_zero_width_ci():
    assert mean_ci([0.6, 0.6, 0.6])[1] == pytest.approx(0.0)


# ---- the tidy table and the summary ----------------------------------------------

def test_tidy_table_has_one_row_per_cell_in_grid_order():
    cfg = config()
    table = results_table(list(reversed(full_grid(cfg))), cfg)
    assert len(table) == 2 * 1 * 2 * 2 * 3 == len(cfg.cells())
    assert table[list(KEYS)].equals(cfg.cells())
    assert {"tow", "tow_mia", "forget_acc", "retain_acc", "test_acc", "mia", "forget_acc_low", "seconds",
            "oracle_seconds", "oracle_tow", "oracle_forget_acc", "forget_size"} <= set(table.columns)
    assert "unlearned" not in table.columns and "oracle" not in table.columns
    assert (table["oracle_tow"] == 1.0).all()


def test_summary_has_one_row_per_method_kind_strategy_with_stats_over_seeds():
    cfg = config()
    table = results_table(full_grid(cfg), cfg)
    summary = summarize(table)
    assert len(summary) == 2 * 2 * 2 and (summary["n_seeds"] == 3).all()
    assert list(summary.columns[:len(GROUP)]) == list(GROUP)
    for metric in ("tow", "tow_mia", "forget_acc", "retain_acc", "test_acc", "mia", "seconds", "oracle_seconds"):
        assert {f"{metric}_mean", f"{metric}_ci95", f"{metric}_ci_low", f"{metric}_ci_high"} <= set(summary.columns)
    first = summary.iloc[0]
    cell = table[(table["method"] == first["method"]) & (table["kind"] == first["kind"])
                 & (table["strategy"] == first["strategy"])]
    mean, half, _ = mean_ci(cell["tow"])
    assert first["tow_mean"] == pytest.approx(mean) and first["tow_ci95"] == pytest.approx(half)
    assert first["tow_ci_low"] == pytest.approx(mean - half) and first["tow_ci_high"] == pytest.approx(mean + half)
    assert first["seconds_mean"] == pytest.approx(3.0)  # seconds 2, 3, 4 for seeds 0, 1, 2


def test_records_outside_the_grid_are_dropped_and_a_missing_cell_is_named():
    cfg = config(seeds=[0, 1])
    stale = record(seed=7)  # from a larger earlier grid
    table = results_table(full_grid(cfg) + [stale], cfg)
    assert 7 not in set(table["seed"]) and len(table) == len(cfg.cells())
    incomplete = [r for r in full_grid(cfg) if not (r["method"] == "finetune" and r["seed"] == 1)]
    with pytest.raises(ValueError, match=r"4 grid cell\(s\) have no record, e\.g\. "
                                         r"ablations_cell@finetune-exact-low-vanilla-1"):
        results_table(incomplete, cfg)
    with pytest.raises(ValueError, match="recorded twice"):
        results_table(full_grid(cfg) + [record(seed=0, kind="low", strategy="rum")], cfg)


def test_summary_metrics_nest_by_method_score_kind_strategy_for_dvc():
    cfg = config(seeds=[0])
    metrics = summary_metrics(summarize(results_table(full_grid(cfg), cfg)))
    leaf = metrics["grids"]["ablations"]["neggrad_plus"]["exact"]["high"]["rum"]
    assert leaf["n_seeds"] == 1 and 0 <= leaf["tow_mean"] <= 1 and math.isnan(leaf["tow_ci95"])
    assert "tow_ci_low" not in leaf  # mean and half-width suffice in `dvc metrics show`


def test_plot_is_written_for_one_or_several_scores_and_nan_cis(tmp_path):
    cfg = config(seeds=[0], group_scores=["exact", "confidence"])
    summary = summarize(results_table(full_grid(cfg), cfg))
    path = plot_metric(summary, tmp_path / "plots/tow.png", "tow", cfg.kinds)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_metric(summary, tmp_path / "tow_mia.png", "tow_mia").stat().st_size > 1000


# ---- the grid config -------------------------------------------------------------

def test_every_registered_name_is_a_valid_grid_value():
    cfg = config(methods=METHODS.names(), kinds=FORGET_KINDS.names(), strategies=STRATEGIES.names())
    assert len(cfg.cells()) == len(METHODS) * len(FORGET_KINDS) * len(STRATEGIES) * 3


@pytest.mark.parametrize("changes, message", [
    ({"kinds": ["huge"]}, "ablations.kinds[0]: unknown forget-set kind 'huge'"),
    ({"strategies": ["rum", "rumba"]}, "ablations.strategies[1]: unknown RUM strategy 'rumba'"),
    ({"seeds": []}, "ablations.seeds is empty"),
    ({"seeds": [0, 0]}, "ablations.seeds lists a value twice"),
    ({"methods": []}, "ablations.methods is empty"),
    ({"partition": {"kind": "high"}}, "ablations.partition must not set ['kind']"),
    ({"partition": {"sizes": 3}}, "ablations.partition.sizes: unknown key; valid keys: classes, device,"),
    ({"partition": {"size": 2}}, "partition.size must be >= 3"),
    ({"colour": "red"}, "ablations.colour: unknown key; valid keys: device, first_method_only, fixed_group_score,"),
    ({"seeds": [0, True]}, "ablations.seeds[1]: got true; write an integer"),
    ({"originals": "each"}, "ablations.originals: got 'each'; choose one of: shared, per_seed"),
])
def test_bad_grids_fail_in_one_line_naming_the_fix(changes, message):
    with pytest.raises((ValueError, UnknownNameError)) as caught:  # ConfigError is a ValueError
        config(**changes)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_grid_is_named_by_its_own_section():
    with pytest.raises(ValueError, match=r"^levels\.seeds is empty"):
        from_params(GridConfig, {**GRID, "seeds": []}, "levels")
    with pytest.raises(ValueError, match=r"^rum_compare\.partition must not set \['kind'\]"):
        from_params(GridConfig, {**GRID, "partition": {"kind": "high"}}, "rum_compare")


def test_grid_methods_are_registered_names_or_named_blocks():
    cfg = config(methods=["neggrad_plus", "first_epoch_ga_input"])
    cfg.check_methods({"first_epoch_ga_input": {"method": "first_epoch_ga", "layers": ["input"]}})
    with pytest.raises(UnknownNameError, match="unknown unlearning method 'first_epoch_ga_input'; choose one of:"):
        cfg.check_methods({})
    with pytest.raises(UnknownNameError, match="unknown unlearning method 'forgetall'"):
        cfg.check_methods({"first_epoch_ga_input": {"method": "forgetall"}})


def test_partition_params_take_the_cell_and_keep_the_shared_keys():
    cfg = config(partition={"size": 30, "refine_score": "confidence"})
    params = cfg.partition_params("entanglement", "high", 2)
    assert params == {"size": 30, "refine_score": "confidence", "group_score": "entanglement", "kind": "high",
                      "seed": 2}
    assert config(partition={"size": 30}).partition_params("confidence", "mix", 0)["refine_score"] == "confidence"


def test_fixed_group_score_keeps_f_and_refines_by_the_grid_score():
    cfg = config(fixed_group_score="exact_prob", partition={"size": 30})
    params = cfg.partition_params("confidence", "mix", 1)
    assert (params["group_score"], params["refine_score"]) == ("exact_prob", "confidence")
    with pytest.raises(ValueError, match="remove partition.refine_score"):
        config(fixed_group_score="exact_prob", partition={"size": 30, "refine_score": "confidence"})


def test_a_grid_names_every_score_its_forget_sets_read():
    assert config(group_scores=["confidence", "exact"]).scores() == {"confidence", "exact"}
    assert config(group_scores=["confidence"], fixed_group_score="exact_prob", partition={"size": 30}).scores() == {
        "confidence", "exact_prob"}
    assert config(group_scores=["exact"], partition={"size": 30, "refine_score": "loss_curvature"}).scores() == {
        "exact", "loss_curvature"}
    assert config().originals == "shared"  # the default run keeps one original for every seed


def test_several_grids_make_one_table_with_a_grid_column():
    main, compare = config(seeds=[0, 1]), config(seeds=[0, 1], group_scores=["confidence"], kinds=["mix"])
    records = full_grid(main) + [{**r, "grid": "rum_compare"} for r in full_grid(compare)]
    table = results_table(records, {"ablations": main, "rum_compare": compare})
    assert table["grid"].value_counts().to_dict() == {"ablations": len(main.cells()), "rum_compare": len(compare.cells())}
    assert set(summarize(table)["grid"]) == {"ablations", "rum_compare"}


def test_cells_cover_the_product_of_the_grid():
    cells = config().cells()
    assert list(cells.columns) == list(KEYS)
    assert not cells.duplicated().any()
    assert isinstance(cells, pd.DataFrame) and cells["seed"].dtype.kind == "i"


def test_the_grid_axes_are_the_cell_keys_in_one_place():
    from memunlearn.grid import AXES
    from memunlearn.partition import grid_forget_set

    grid = config()
    assert list(grid.cells("ablations").columns) == list(KEYS) and len(AXES) == len(KEYS) - 1
    assert grid.cells("ablations").shape[0] == math.prod(len(getattr(grid, axis)) for axis in AXES)
    assert grid.partition_params("exact", "low", 1) == grid_forget_set({"size": 30}, "exact", "low", 1)
