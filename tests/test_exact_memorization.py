"""Exact memorization (docs/methods.md §1): subset masks, the estimator, and planted noise found."""
import dataclasses

import numpy as np
import pytest
import torch

from memunlearn.memorization import (ExactConfig, Execution, SubsetModelOutputs, memorization_scores, planted_auroc,
                                     subset_mask)
from memunlearn.memorization.exact import train_subset_models


def _run(index, mask, correct):
    return SubsetModelOutputs(index, np.asarray(mask, bool), np.asarray(correct, np.float32),
                              np.asarray(correct, bool), np.zeros(1, np.float32), np.zeros(1, bool))


def test_estimator_matches_the_formula_by_hand():
    # 4 models, 3 examples. Example 0: right when in, wrong when out -> mem 1.
    # Example 1: always right -> mem 0. Example 2: never held out -> missing.
    masks = [[1, 1, 1], [1, 0, 1], [0, 1, 1], [0, 0, 1]]
    correct = [[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 1, 0]]
    scores = memorization_scores([_run(k, m, c) for k, (m, c) in enumerate(zip(masks, correct))],
                                 np.array([10, 11, 12]))
    assert scores["example_id"].tolist() == [10, 11, 12]
    assert scores["mem"].iloc[0] == pytest.approx(1.0)
    assert scores["mem"].iloc[1] == pytest.approx(0.0)
    assert np.isnan(scores["mem"].iloc[2])  # never out of a subset: missing, not 0
    assert scores[["n_in", "n_out"]].iloc[2].tolist() == [4, 0]
    assert scores[["n_in", "n_out"]].iloc[0].tolist() == [2, 2]
    # Example 0 is right in 2 of 2 in-models and 0 of 2 out-models: the plug-in variance would be 0, the
    # Jeffreys posterior's is p(1-p)/(n+2) with p = 2.5/3 (in) and 0.5/3 (out): never 0 for a finite count.
    assert scores["mem_se"].iloc[0] == pytest.approx(np.sqrt(2 * (2.5 / 3) * (0.5 / 3) / 4))
    assert (scores["mem_se"].iloc[:2] > 0).all()


def test_standard_error_uses_both_groups():
    masks = [[1], [1], [0], [0]]
    correct = [[1], [0], [0], [0]]
    scores = memorization_scores([_run(k, m, c) for k, (m, c) in enumerate(zip(masks, correct))], np.array([0]))
    assert scores["mem"].iloc[0] == pytest.approx(0.5)
    # Jeffreys posterior variances: in 1 of 2 -> p = 0.5, 0.25/4; out 0 of 2 -> p = 0.5/3, (0.5/3)(2.5/3)/4
    assert scores["mem_se"].iloc[0] == pytest.approx(np.sqrt(0.25 / 4 + (0.5 / 3) * (2.5 / 3) / 4))


def test_subset_masks_have_the_right_size_and_do_not_depend_on_k():
    first = subset_mask(1000, 0.7, seed=3, index=5)
    again = subset_mask(1000, 0.7, seed=3, index=5)
    other = subset_mask(1000, 0.7, seed=3, index=6)
    assert int(first.sum()) == 700
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_config_rejects_degenerate_fractions():
    with pytest.raises(ValueError, match="must be < 1"):
        ExactConfig(num_models=4, subset_fraction=1.0).validate()
    with pytest.raises(ValueError, match="num_models must be >= 2"):
        ExactConfig(num_models=1).validate()


def test_planted_mislabeled_examples_get_the_highest_scores(synthetic, tiny_recipe):
    train, test, info, flipped = synthetic
    config = ExactConfig(num_models=8, subset_fraction=0.7, seed=0)
    runs = train_subset_models(train, test, info, tiny_recipe, config, torch.device("cpu")).runs
    scores = memorization_scores(runs, train.example_ids.numpy()).set_index("example_id")
    mem = scores["mem"]
    assert planted_auroc(mem, flipped) > 0.9
    assert mem.loc[flipped].mean() > mem.drop(flipped).mean() + 0.3
    # every model saw about 70% of the data
    assert all(abs(r.mask.mean() - 0.7) < 0.01 for r in runs)


def test_convergence_curve_ends_at_one_and_halves_agree_on_a_stable_signal(tmp_path):
    from memunlearn.memorization.convergence import convergence, plot_convergence

    rng = np.random.default_rng(0)
    n, K = 300, 12
    memorized = np.arange(n) < 30  # right only when trained on; the rest always right
    runs = []
    for k in range(K):
        mask = rng.random(n) < 0.7
        correct = np.where(memorized, mask, True)
        runs.append(_run(k, mask, correct))
    curve, summary = convergence(runs, np.arange(n))
    assert curve["k"].iloc[-1] == K and curve["spearman_vs_all"].iloc[-1] == pytest.approx(1.0)
    assert summary["spearman_split_halves"] > 0.5 and summary["spearman_half_vs_full"] > 0.5
    scores = memorization_scores(runs, np.arange(n))
    paths = plot_convergence(curve, scores, tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_memorize_summary_reports_scores_and_cost():
    import pandas as pd

    from memunlearn.memorization.exact import SubsetRuns
    from memunlearn.memorization.summary import memorize_summary
    from memunlearn.training import TrainConfig

    masks = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]], dtype=bool)
    runs = [SubsetModelOutputs(k, masks[k], np.zeros(4, np.float32), np.ones(4, bool), np.zeros(2, np.float32),
                               np.ones(2, bool), seconds=2.0) for k in range(3)]
    scores = pd.DataFrame({"example_id": [10, 11, 12, 13], "mem": [0.5, np.nan, 0.1, 0.0],
                           "mem_prob": [0.4, 0.0, 0.1, 0.0], "mem_se": [0.2, 0.3, 0.1, 0.1]})
    metrics = memorize_summary(SubsetRuns(runs, trained=[0, 1], reused=[2]), scores, [10], {"stable": 1.0},
                               ExactConfig(num_models=3), TrainConfig(epochs=2), "key", 3600.0, torch.device("cpu"),
                               Execution(runner="prefect", workers=2))
    assert (metrics["models_trained"], metrics["models_reused"], metrics["store_key"]) == (2, 1, "key")
    assert (metrics["runner"], metrics["workers"]) == ("prefect", 2)
    assert metrics["missing_fraction"] == 0.25 and metrics["planted_noise_auroc"] == 1.0 and metrics["stable"] == 1.0
    assert metrics["compute_seconds"] == 6.0 and metrics["models_per_hour"] == 2.0
    assert metrics["models_timed"] == 3
    # a model pulled from a DVC remote has no time (store files hold none): counted at the timed models' mean
    runs[2] = dataclasses.replace(runs[2], seconds=float("nan"))
    untimed = memorize_summary(SubsetRuns(runs, trained=[0, 1], reused=[2]), scores, [10], {}, ExactConfig(num_models=3),
                               TrainConfig(epochs=2), "key", 3600.0, torch.device("cpu"), Execution())
    assert (untimed["compute_seconds"], untimed["models_timed"]) == (6.0, 2)
    assert metrics["examples_processed"] == 4 * 2  # 2 + 2 examples in the trained models, times 2 epochs
