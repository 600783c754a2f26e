"""SalUn, random-label and l1-sparse unlearning (docs/methods.md §5): the properties that define them."""
import copy

import pytest
import torch
import torch.nn.functional as F

from memunlearn.data.splits import normalize
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit
from memunlearn.unlearning import METHODS, UnlearnContext
from memunlearn.unlearning.l1_sparse import l1_norm, l1_weight
from memunlearn.unlearning.random_label import epoch_data, wrong_labels
from memunlearn.unlearning.salun import saliency_mask, top_fraction_mask

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(synthetic):
    """(forget = the flipped examples, a small retain set, info)."""
    train, _, info, flipped = synthetic
    return train.select_ids(flipped), train.drop_ids(flipped).take(torch.arange(72)), info


@pytest.fixture(scope="module")
def model(data):
    """A briefly trained small CNN (so BatchNorm has running statistics and F has real gradients)."""
    forget, retain, info = data
    net = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    fit(net, forget.concat(retain), info, TrainConfig(model="small_cnn", epochs=3, batch_size=32, lr=0.05),
        generator(0, "order"), CPU)
    return net


def ctx(info, seed=0):
    return UnlearnContext(info, TrainConfig(model="small_cnn"), CPU, seed)


def run(name, model, data, seed=0, **params):
    forget, retain, info = data
    method = METHODS.get(name)
    return method.run(copy.deepcopy(model), forget, retain, method.config(params), ctx(info, seed))


# ---- SalUn mask ------------------------------------------------------------

def test_top_fraction_mask_keeps_the_largest_scores_ranked_across_tensors():
    scores = {"a": torch.tensor([0.1, 5.0, 0.3]), "b": torch.tensor([[2.0, 0.0], [4.0, 1.0]])}
    mask = top_fraction_mask(scores, 3 / 7 + 1e-9)  # k = 3 of 7: 5.0, 4.0, 2.0 (the RUM copy would keep 0.0, 0.1, 0.3)
    assert mask["a"].tolist() == [False, True, False]
    assert mask["b"].tolist() == [[True, False], [True, False]]


@pytest.mark.parametrize("threshold", [0.1, 0.5, 1.0])
def test_saliency_mask_holds_exactly_the_largest_forget_gradients(model, data, threshold):
    forget, _, info = data
    net = copy.deepcopy(model).train()
    mask = saliency_mask(net, forget, info, threshold, CPU, batch_size=10)  # chunked: 10 + 10 + 4

    assert net.training and all(p.grad is None for p in net.parameters())  # mode restored, .grad untouched
    assert mask.keys() == dict(net.named_parameters()).keys()
    # independent reference: one full-F backward pass in eval mode (official generate_mask.py)
    net.eval()
    F.cross_entropy(net(normalize(forget.images, info)), forget.labels).backward()
    grad = torch.cat([p.grad.abs().flatten() for p in net.parameters()])
    keep = torch.cat([m.flatten() for m in mask.values()])
    assert keep.dtype == torch.bool
    assert int(keep.sum()) == int(grad.numel() * threshold)
    if threshold < 1:
        # every masked |grad| >= every unmasked |grad| (up to float rounding of the chunked sum)
        assert grad[keep].min() >= grad[~keep].max() * (1 - 1e-4)
        assert grad[keep].mean() > 2 * grad[~keep].mean()


# ---- SalUn training ----------------------------------------------------------

def test_salun_without_weight_decay_leaves_weights_outside_the_mask_bit_identical(model, data):
    forget, _, info = data
    mask = saliency_mask(model, forget, info, 0.3, CPU, batch_size=32)  # salun chunks F by its batch_size
    after = run("salun", model, data, threshold=0.3, weight_decay=0.0, epochs=2, lr=0.05, batch_size=32)

    before_params, after_params = dict(model.named_parameters()), dict(after.named_parameters())
    moved = 0
    for name, keep in mask.items():
        old, new = before_params[name].detach(), after_params[name].detach()
        assert torch.equal(old[~keep], new[~keep]), name
        moved += int((old[keep] != new[keep]).sum())
    assert moved > 0.5 * sum(int(k.sum()) for k in mask.values())  # the salient weights did train


@pytest.mark.parametrize("weight_decay", [0.05, 5e-4])
def test_salun_keeps_weights_outside_the_mask_bit_identical_under_weight_decay_and_momentum(model, data,
                                                                                           weight_decay):
    """Official SalUn restores the weights outside the mask and clears their momentum after every step, so
    neither weight decay nor momentum moves them (gradient masking alone shrinks them by wd every step)."""
    forget, _, info = data
    mask = saliency_mask(model, forget, info, 0.3, CPU, batch_size=32)
    after = run("salun", model, data, threshold=0.3, weight_decay=weight_decay, momentum=0.9, epochs=2, lr=0.05,
                batch_size=32)
    before_params, after_params = dict(model.named_parameters()), dict(after.named_parameters())
    moved = 0
    for name, keep in mask.items():
        old, new = before_params[name].detach(), after_params[name].detach()
        assert torch.equal(old[~keep], new[~keep]), name
        moved += int((old[keep] != new[keep]).sum())
    assert moved > 0.5 * sum(int(k.sum()) for k in mask.values())


def test_freeze_outside_mask_restores_weights_and_clears_momentum():
    """One SGD step with weight decay on a parameter whose mask keeps one entry of three."""
    from memunlearn.unlearning.common import FreezeOutsideMask

    net = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.5)
    FreezeOutsideMask(net, {"weight": torch.tensor([[True, False, False]])}).attach(opt)
    for _ in range(3):
        opt.zero_grad()
        net(torch.ones(1, 3)).sum().backward()  # gradient 1 everywhere: masked entries would move without the hook
        opt.step()
        assert net.weight[0, 1:].tolist() == [2.0, 3.0]
        assert opt.state[net.weight]["momentum_buffer"][0, 1:].tolist() == [0.0, 0.0]
    assert net.weight[0, 0] < 1.0 - 0.1  # the kept entry trained


# ---- random labels -----------------------------------------------------------

def test_random_labels_are_always_wrong_and_redrawn_every_epoch(data):
    forget, retain, info = data
    epochs = [epoch_data(forget, retain, info.num_classes, seed=0, purpose="random_label", epoch=e) for e in range(6)]
    n = len(forget)
    drawn = torch.stack([d.labels[:n] for d in epochs])  # (epochs, n_F)
    for d in epochs:
        assert torch.equal(d.example_ids, torch.cat([forget.example_ids, retain.example_ids]))
        assert torch.equal(d.labels[n:], retain.labels)  # R keeps its labels
    assert (drawn != forget.labels).all()  # never the true label
    assert all(not torch.equal(drawn[e], drawn[e + 1]) for e in range(5))  # redrawn each epoch
    # seeded: the same seed gives the same labels, another seed others
    assert torch.equal(epoch_data(forget, retain, info.num_classes, 0, "random_label", 3).labels, epochs[3].labels)
    assert not torch.equal(epoch_data(forget, retain, info.num_classes, 1, "random_label", 3).labels, epochs[3].labels)


def test_wrong_labels_are_uniform_over_the_wrong_classes():
    labels = torch.zeros(30_000, dtype=torch.long)
    counts = torch.bincount(wrong_labels(labels, 4, torch.Generator().manual_seed(0)), minlength=4)
    assert counts[0] == 0
    assert ((counts[1:] - 10_000).abs() < 400).all(), counts  # ~4.5 standard deviations


# ---- l1_sparse ---------------------------------------------------------------

def test_l1_weight_follows_the_official_schedule_epoch_0_to_E_minus_1():
    """Official FT_l1: alpha * (1 - epoch / E), epoch = 0..E-1: γ first, γ/E last, mean 0.55γ at E = 10."""
    assert [l1_weight(0.1, e, 4) for e in range(4)] == pytest.approx([0.1, 0.075, 0.05, 0.025])
    assert sum(l1_weight(1.0, e, 10) for e in range(10)) / 10 == pytest.approx(0.55)
    with pytest.raises(ValueError, match="epoch must lie in 0..3"):
        l1_weight(0.1, 4, 4)


def test_l1_penalty_acts_in_every_epoch_including_a_single_one(model, data):
    # one epoch: the penalty is γ (the old 1..E count gave 0 and plain fine-tuning)
    plain = run("l1_sparse", model, data, epochs=1, gamma=0.0, lr=0.05)
    sparse = run("l1_sparse", model, data, epochs=1, gamma=0.05, lr=0.05)
    assert l1_norm(sparse) < 0.9 * l1_norm(plain)


# ---- all three ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["l1_sparse", "random_label", "salun"])
def test_method_is_deterministic_for_a_seed(model, data, name):
    a, b = (run(name, model, data, seed=0, epochs=1) for _ in range(2))
    other = run(name, model, data, seed=1, epochs=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), other.state_dict().values()))


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match=r"methods.salun.threshold must lie in \(0, 1\]"):
        METHODS.get("salun").config({"threshold": 0.0})
    with pytest.raises(ValueError, match="methods.l1_sparse.gamma must be >= 0"):
        METHODS.get("l1_sparse").config({"gamma": -1.0})
