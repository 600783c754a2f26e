"""Every registered proxy: one finite score per example, right direction, finds planted noise."""
import numpy as np
import pytest
import torch

from memunlearn.memorization import PROXIES, ProxyConfig, ProxyInputs, compute_proxies, planted_auroc, proxy_costs
from memunlearn.memorization.proxies.holdout_retrain import finetune_until_plateau, symmetric_kl
from memunlearn.training.curvature import input_grad, loss_curvature, rademacher_curvature
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
    costs = proxy_costs(PROXIES.names(), own, {"learning_events": 1.5, "curvature": 7.0, "curvature_rademacher": 30.0})
    assert costs["confidence"] == pytest.approx(own["confidence"] + 1.5)
    assert costs["loss_curvature"] == pytest.approx(own["loss_curvature"] + 7.0)
    assert costs["loss_curvature_rademacher"] == pytest.approx(own["loss_curvature_rademacher"] + 30.0)
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


# ---- loss-curvature estimators (item 5 of issue 14) ----------------------------

def test_both_curvature_estimators_are_recorded_and_differ(trained):
    frame = trained[2].to_frame()
    assert {"loss_curvature", "loss_curvature_rademacher"} <= set(frame.columns)
    assert not np.allclose(frame["loss_curvature"], frame["loss_curvature_rademacher"])
    assert set(trained[2].seconds_by_estimator) == {"sign_gradient", "rademacher"}


class _Quadratic(torch.nn.Module):
    """Logits (0, 0.5*||x||^2 * c): CE's input gradient is a known function of x, so grad differences are exact."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        q = 0.5 * self.c * x.flatten(1).pow(2).sum(1)
        return torch.stack([torch.zeros_like(q), q], 1)


def test_rademacher_estimator_is_garg_et_al_and_sign_gradient_the_rum_code():
    """On a model whose loss is l(x) = softplus(-q), q = 0.5*c*||x||^2, y = 1, check each estimator against
    its definition computed by hand: Rademacher z = h*v, v in {-1, +1}^D (||z|| = h*sqrt(D), mean over
    draws) vs sign-gradient z = h*sign(g)/||sign(g)|| (||z|| = h, one draw)."""
    torch.manual_seed(0)
    model = _Quadratic(0.7).double()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    y = torch.ones(3, dtype=torch.long)
    g = input_grad(model, x, y)
    gen = torch.Generator().manual_seed(5)
    got = rademacher_curvature(model, x, y, 1e-3, 10, gen)
    gen = torch.Generator().manual_seed(5)
    want = torch.zeros(3, dtype=torch.float64)
    for _ in range(10):
        v = torch.randint(0, 2, x.shape, generator=gen).double() * 2 - 1
        assert set(v.unique().tolist()) == {-1.0, 1.0}
        want += (input_grad(model, x + 1e-3 * v, y) - g).flatten(1).norm(dim=1)
    torch.testing.assert_close(got, want / 10)
    z = 0.01 * torch.sign(g) / torch.sign(g).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    sign = loss_curvature(model, x, y, 0.01)
    torch.testing.assert_close(sign, (input_grad(model, x + z, y) - g).flatten(1).norm(dim=1))
    # different perturbations (sizes h*sqrt(D) vs h, random vs gradient-sign): not rescalings of each other
    assert not torch.allclose(got / got.mean(), sign / sign.mean())


def test_curvature_draws_are_seeded_per_epoch(synthetic, trained):
    from memunlearn.training import CurvatureRecorder

    train, _, info, _ = synthetic
    model = trained[0]
    a, b = (CurvatureRecorder(train, info, CPU, estimators=("rademacher",), draws=2, seed=0) for _ in range(2))
    other = CurvatureRecorder(train, info, CPU, estimators=("rademacher",), draws=2, seed=1)
    for rec in (a, b, other):
        rec(0, model)
    assert np.array_equal(a.to_frame().to_numpy(), b.to_frame().to_numpy())
    assert not np.array_equal(a.to_frame().to_numpy(), other.to_frame().to_numpy())
    assert list(a.to_frame().columns) == ["example_id", "loss_curvature_rademacher"]


def test_record_config_validates_estimators():
    from memunlearn.config import from_params
    from memunlearn.training import RecordConfig

    assert from_params(RecordConfig, {}, "train_records").curvature_estimators == ("sign_gradient", "rademacher")
    with pytest.raises(ValueError, match="curvature_estimators"):
        from_params(RecordConfig, {"curvature_estimators": ["hutchinson"]}, "train_records")


# ---- holdout_retrain weight decay (item 5 of issue 14) ----------------------------

def test_holdout_retrain_weight_decay_defaults_to_the_reference_and_is_applied(synthetic, trained):
    import copy

    assert ProxyConfig().holdout_weight_decay == 5e-4
    train, test, info, _ = synthetic
    runs = {}
    for wd in (0.0, 5e-4):
        tuned = copy.deepcopy(trained[0])
        finetune_until_plateau(tuned, test, info, ProxyConfig(holdout_max_epochs=1, holdout_weight_decay=wd), CPU)
        runs[wd] = tuned
    # one epoch from the same start and batch order: only weight decay differs, so the weights must differ
    assert not all(torch.equal(a, b) for a, b in zip(runs[0.0].parameters(), runs[5e-4].parameters()))
    with pytest.raises(ValueError, match="holdout_weight_decay must be >= 0"):
        ProxyConfig(holdout_weight_decay=-1.0).validate()


def test_an_unrecorded_curvature_estimator_is_skipped_by_default_not_an_error():
    import pandas as pd

    from memunlearn.memorization.proxies import PROXIES, recorded_proxies

    only_sign = pd.DataFrame({"example_id": [1], "loss_curvature": [0.1]})
    names = recorded_proxies(only_sign)
    assert "loss_curvature" in names and "loss_curvature_rademacher" not in names
    assert set(PROXIES.names()) - set(names) == {"loss_curvature_rademacher"}
    assert "loss_curvature" not in recorded_proxies(None)  # train_records.curvature: false
