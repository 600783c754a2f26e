"""LiRA-style forgetting quality (docs/methods.md §6; the NeurIPS 2023 unlearning challenge metric)."""
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from memunlearn.config import ConfigError, from_params
from memunlearn.evaluation.lira import (DELTA, EPSILON_CAP, bucket_score, epsilon_from_errors, example_epsilon,
                                        final_score, forget_score, logit_scaled_confidence, max_epsilon)
from memunlearn.experiments.forgetting_quality import ForgettingQualityConfig, forgetting_quality
from memunlearn.models import build_model
from memunlearn.partition import SUBSETS, PartitionedData
from memunlearn.seeding import generator
from memunlearn.training import fit
from memunlearn.unlearning import UnlearnContext, UnlearnPlan
from memunlearn.unlearning import UnlearnConfig

CPU = torch.device("cpu")


# ---- confidence --------------------------------------------------------------

def test_logit_scaled_confidence_is_the_log_odds_of_the_true_class():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1.0, 3.0, -2.0]])
    labels = torch.tensor([0, 2, 1])
    p = torch.softmax(logits.double(), 1)[torch.arange(3), labels].numpy()
    np.testing.assert_allclose(logit_scaled_confidence(logits, labels), np.log(p) - np.log1p(-p), rtol=1e-12)
    assert logit_scaled_confidence(logits, labels)[1] == pytest.approx(-math.log(2))  # 1/3 vs 2/3


def test_logit_scaled_confidence_stays_finite_where_probabilities_saturate():
    conf = logit_scaled_confidence(torch.tensor([[200.0, 0.0], [0.0, 200.0]]), torch.tensor([0, 0]))
    np.testing.assert_allclose(conf, [200.0, -200.0])  # p_y rounds to 1 / 0 in floating point


# ---- ε and buckets -----------------------------------------------------------

def test_epsilon_from_errors_hand_values():
    two_sided = math.log(1 - DELTA - 0.2) - math.log(0.1)  # the FNR-side term wins for fpr 0.1, fnr 0.2
    assert epsilon_from_errors([0.1], [0.2]) == pytest.approx(two_sided)
    assert epsilon_from_errors([0.1, 0.5], [0.2, 0.5]) == pytest.approx(two_sided)  # the max over thresholds
    assert epsilon_from_errors([0.5], [0.5]) == 0.0  # a coin flip: log < 0, clipped
    assert epsilon_from_errors([0.3, 0.0], [0.3, 0.0]) == EPSILON_CAP  # perfect separation somewhere
    # one zero rate: too few samples, that threshold is discarded (it alone would be +inf)
    assert epsilon_from_errors([0.0, 0.3], [0.4, 0.3]) == pytest.approx(math.log(1 - DELTA - 0.3) - math.log(0.3))


def _reference_points(eps, num_models):
    """The challenge's bucket loop, restated: 0.5-wide buckets from 0, points halving, up to ceil(ln(M-1))."""
    top, start, points = math.ceil(math.log(num_models - 1)), 0.0, 1.0
    while start + 0.5 <= top:
        if eps < start + 0.5:
            return points
        start, points = start + 0.5, points / 2
    return 0.0


def test_bucket_score_matches_the_challenge_definition():
    assert max_epsilon(512) == 7 and max_epsilon(3) == 1 and max_epsilon(4) == 2
    hand = {0.0: 1, 0.49: 1, 0.5: 0.5, 0.99: 0.5, 1.0: 0.25, 3.2: 2 ** -6, 6.99: 2 ** -13, 7.0: 0, 50.0: 0}
    for eps, points in hand.items():
        assert bucket_score(eps, 512) == points, eps
    assert bucket_score(math.log(2), 3) == 0.5 and bucket_score(1.0, 3) == 0.0  # 3 models: two buckets
    assert bucket_score(0.0, 2) == 0.0  # 2 models: ceil(ln 1) = 0, no bucket at all
    for m in (3, 4, 8, 100, 512):
        for eps in np.linspace(0, 8, 161):
            assert bucket_score(eps, m) == _reference_points(eps, m), (m, eps)


def test_identical_samples_give_zero_epsilon_and_the_top_score():
    confs = np.random.default_rng(0).normal(size=(8, 10))
    score, eps, points = forget_score(confs, confs.copy())
    assert score == 1.0 and np.all(eps == 0) and np.all(points == 1)


def test_epsilon_grows_with_separation_and_separated_distributions_score_zero():
    rng = np.random.default_rng(0)
    retrained = rng.normal(0, 1, size=(32, 12))
    results = {shift: forget_score(rng.normal(shift, 1, size=(32, 12)), retrained) for shift in (0.0, 1.0, 3.0, 10.0)}
    mean_eps = [results[s][1].mean() for s in (0.0, 1.0, 3.0)]
    assert mean_eps[0] < mean_eps[1] < mean_eps[2]
    # same distribution: the finite-sample floor of the reference estimator (tail thresholds), far below the cap
    assert results[0.0][1].max() < 3 and results[0.0][0] > 0.1
    assert results[3.0][0] < results[1.0][0] < results[0.0][0]
    assert np.all(results[10.0][1] == EPSILON_CAP) and results[10.0][0] == 0.0


def test_a_collapsed_unlearned_distribution_gets_the_cap_even_with_the_same_median():
    retrained = np.random.default_rng(0).normal(size=16)
    assert example_epsilon(np.full(16, np.median(retrained)), retrained) == EPSILON_CAP
    assert example_epsilon(np.full(8, 1.5), np.full(8, 1.5)) == 0.0  # both constant and equal: indistinguishable


def test_final_score_multiplies_in_the_utility_ratios():
    assert final_score(0.5, 0.9, 1.0, 0.8, 0.8) == pytest.approx(0.45)
    assert final_score(0.5, 0.9, 0.9, 0.6, 0.8) == pytest.approx(0.375)
    assert final_score(0.5, 1.0, 0.8, 1.0, 1.0) == pytest.approx(0.625)  # not capped, as in the reference


# ---- config ------------------------------------------------------------------

def test_config_rejects_too_few_copies_and_unknown_names():
    with pytest.raises(ConfigError, match="copies"):
        from_params(ForgettingQualityConfig, {"copies": 2}, "forgetting_quality")
    with pytest.raises(KeyError, match="nope"):
        from_params(ForgettingQualityConfig, {"method": "nope"}, "forgetting_quality")
    with pytest.raises(ConfigError, match="valid keys"):
        from_params(ForgettingQualityConfig, {"models": 5}, "forgetting_quality")


def test_config_defaults_to_the_unlearn_section():
    unlearn = UnlearnConfig(method="neggrad_plus", strategy="rum", subset_methods={"low": "none"})
    inherited = ForgettingQualityConfig(seed=7).resolve(unlearn)
    assert (inherited.method, inherited.strategy, dict(inherited.subset_methods), inherited.seed) == (
        "neggrad_plus", "rum", {"low": "none"}, 7)
    own = ForgettingQualityConfig(method="finetune", strategy="vanilla").resolve(unlearn)
    assert (own.method, own.strategy, dict(own.subset_methods)) == ("finetune", "vanilla", {})


# ---- driver on the tiny synthetic data -----------------------------------------

@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared CPU: a second torch thread only spins (measured 8 s vs 150 s per fit under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(synthetic, tiny_recipe, one_thread):
    """(original model that memorized F, partition with F = the flipped examples, test, ctx)."""
    train, test, info, flipped = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    fit(model, train, info, tiny_recipe, generator(0, "order"), CPU)
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    subsets = {name: forget.take(part) for name, part in zip(SUBSETS, torch.arange(len(forget)).chunk(3))}
    return model, PartitionedData(forget, retain, subsets), test, UnlearnContext(info, tiny_recipe, CPU, seed=3)


@pytest.fixture(scope="module")
def retrain_as_unlearning(setup):
    """Unlearned copies = retrained from scratch under other seeds: the same distribution as the reference side."""
    model, parts, test, ctx = setup
    return forgetting_quality(model, parts, test, "vanilla", UnlearnPlan("retrain"), ctx, copies=4)


def test_retraining_as_unlearning_scores_far_above_doing_nothing(setup, retrain_as_unlearning):
    model, parts, test, ctx = setup
    nothing = forgetting_quality(model, parts, test, "vanilla", UnlearnPlan("none"), ctx, copies=3,
                                 null_baseline=False)
    same = retrain_as_unlearning

    # doing nothing: every copy is the memorizing original, one point mass against a spread: the cap everywhere
    assert np.all(nothing.epsilons == EPSILON_CAP) and nothing.forget_score == 0 and nothing.final_score == 0
    assert nothing.accuracies["unlearned_forget_acc"] > nothing.accuracies["retrained_forget_acc"] + 0.3
    # retraining under other seeds: indistinguishable up to the estimator's finite-sample floor
    assert np.mean(same.epsilons < EPSILON_CAP) > 0.8
    assert same.forget_score > 0.1
    # copy k is the same model whatever `copies` is (seeds derive from the base seed and k only)
    np.testing.assert_array_equal(nothing.retrained_confs, same.retrained_confs[:3])
    assert np.all(same.unlearned_confs.std(axis=0) > 0)  # the copies differ
    assert not np.array_equal(same.unlearned_confs, same.retrained_confs)  # and the two sides use other seeds
    # the null (retrained vs retrained, disjoint seeds) is a perfect unlearner's score: above 0, below the top
    assert 0.1 < same.null_forget_score < 1 and math.isnan(nothing.null_forget_score)
    assert same.metrics()["null_forget_score"] == same.null_forget_score


def test_result_table_and_the_final_score_is_the_utility_adjusted_forget_score(setup, retrain_as_unlearning):
    model, parts, test, ctx = setup
    res = retrain_as_unlearning
    acc = res.accuracies
    assert res.final_score == pytest.approx(res.forget_score
                                            * acc["unlearned_retain_acc"] / acc["retrained_retain_acc"]
                                            * acc["unlearned_test_acc"] / acc["retrained_test_acc"])
    table = res.table()
    assert list(table["example_id"]) == parts.forget.example_ids.tolist()
    assert res.unlearned_confs.shape == res.retrained_confs.shape == (4, len(parts.forget))
    np.testing.assert_allclose(table["points"].mean(), res.forget_score)
    metrics = res.metrics()
    assert metrics["copies"] == 4 and metrics["forget_score"] == res.forget_score


def test_unlearned_copy_k_is_the_run_with_seed_k_and_loads_from_the_cache(setup, tmp_path):
    """LiRA's unlearned copy k is the run a grid cell with seed k makes on the same F: a run made there first is
    loaded here (the unlearning cache), and the copies' scores are those of running them fresh."""
    from memunlearn.unlearning.cache import cached_strategy

    model, parts, test, ctx = setup
    plan = UnlearnPlan("finetune", {"finetune": {"epochs": 1}})
    cell = dataclasses.replace(ctx, seed=ctx.seed + 1)  # the cell with seed ctx.seed + 1 = unlearned copy 1
    cached_strategy("vanilla", copy.deepcopy(model), parts.subsets, parts.retain, plan, cell, tmp_path / "unlearn")
    fresh = forgetting_quality(model, parts, test, "vanilla", plan, ctx, copies=3, null_baseline=False)
    cached = forgetting_quality(model, parts, test, "vanilla", plan, ctx, copies=3, null_baseline=False,
                                oracle_cache=tmp_path / "oracle", unlearn_cache=tmp_path / "unlearn")
    assert len(list((tmp_path / "unlearn").iterdir())) == 3  # copies 0 and 2 added beside the cell's run
    assert np.array_equal(fresh.unlearned_confs, cached.unlearned_confs)
    assert np.array_equal(fresh.retrained_confs, cached.retrained_confs)
    assert fresh.forget_score == cached.forget_score


def test_config_rejects_more_copies_than_the_seed_spacing():
    with pytest.raises(ConfigError, match=r"forgetting_quality.copies must be <= 1000"):
        from_params(ForgettingQualityConfig, {"copies": 1001}, "forgetting_quality")
