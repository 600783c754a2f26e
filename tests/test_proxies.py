"""Every registered proxy: one finite score per example, right direction, finds planted noise."""
import numpy as np
import pytest
import torch

from memunlearn.memorization import PROXIES, ProxyConfig, ProxyInputs, compute_proxies, planted_auroc, proxy_costs
from memunlearn.memorization.proxies.holdout_retrain import symmetric_kl
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import CurvatureRecorder, LearningEventRecorder, fit

CPU = torch.device("cpu")

# Known weakness: end-of-training scores see only the final model, which has
# fit (memorized) most flipped labels by then, so they separate them less well
# than the proxies that watch the whole of training.
KNOWN_WEAK = {"final_confidence", "final_loss", "final_margin"}


@pytest.fixture(scope="module")
def trained(synthetic, tiny_recipe):
    """The original model with both training-time recorders attached, and the recorders."""
    train, test, info, flipped = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    events = LearningEventRecorder(train.example_ids)
    curvature = CurvatureRecorder(train, info, CPU, h=0.01)
    fit(model, train, info, tiny_recipe, generator(0, "order"), CPU, on_batch=events, on_epoch=curvature)
    return model, events, curvature


@pytest.fixture(scope="module")
def inputs(synthetic, trained):
    train, test, info, _ = synthetic
    model, events, curvature = trained
    config = ProxyConfig(holdout_max_epochs=10, holdout_batch_size=32)
    return ProxyInputs(train, test, info, model, CPU, config, events.to_frame(), curvature.to_frame())


@pytest.fixture(scope="module")
def table(inputs):
    return compute_proxies(PROXIES.names(), inputs)


def test_learning_events_cover_every_example_every_epoch(inputs, tiny_recipe):
    assert (inputs.learning_events["n_events"] == tiny_recipe.epochs).all()
    assert inputs.learning_events[["confidence", "max_conf", "binary_acc"]].stack().between(0, 1).all()


@pytest.mark.parametrize("name", PROXIES.names())
def test_proxy_scores_every_example_and_ranks_planted_noise_high(name, table, inputs, synthetic):
    flipped = synthetic[3]
    scores, _ = table
    assert scores["example_id"].tolist() == inputs.example_ids.tolist()
    assert np.isfinite(scores[name]).all() and np.isfinite(scores[f"{name}__raw"]).all()
    assert np.allclose(scores[name], PROXIES.get(name).direction * scores[f"{name}__raw"])
    # Higher score = more memorized: the flipped labels must rank at the top.
    assert planted_auroc(scores.set_index("example_id")[name], flipped) > (0.6 if name in KNOWN_WEAK else 0.8)


def test_costs_add_the_shared_work_each_proxy_reads(table):
    _, own = table
    costs = proxy_costs(PROXIES.names(), own, {"learning_events": 1.5, "curvature": 7.0})
    assert costs["confidence"] == pytest.approx(own["confidence"] + 1.5)
    assert costs["loss_curvature"] == pytest.approx(own["loss_curvature"] + 7.0)
    assert costs["final_loss"] == pytest.approx(own["final_loss"] + own["final_pass"])
    assert costs["holdout_retrain"] == pytest.approx(own["holdout_retrain"])


def test_curvature_recording_does_not_change_training(synthetic, tiny_recipe, trained):
    train, _, info, _ = synthetic
    plain = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    fit(plain, train, info, tiny_recipe, generator(0, "order"), CPU)
    recorded = trained[0]
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), recorded.state_dict().values()))


def test_missing_curvature_records_name_the_fix(synthetic, trained):
    train, test, info, _ = synthetic
    no_curvature = ProxyInputs(train, test, info, trained[0], CPU, ProxyConfig(), trained[1].to_frame(), None)
    with pytest.raises(ValueError, match=r"no 'loss_curvature' records .* train_records.curvature: true"):
        compute_proxies(["loss_curvature"], no_curvature)


def test_symmetric_kl_is_symmetric_and_zero_on_equal_rows():
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    q = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    assert np.allclose(symmetric_kl(p, q), symmetric_kl(q, p))
    assert symmetric_kl(p, q)[1] == pytest.approx(0.0)
    kl_pq = (p[0] * np.log(p[0] / q[0])).sum()
    kl_qp = (q[0] * np.log(q[0] / p[0])).sum()
    assert symmetric_kl(p, q)[0] == pytest.approx(0.5 * (kl_pq + kl_qp))
