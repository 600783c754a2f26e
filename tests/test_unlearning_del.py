"""DEL, Deletion by Example Localization (docs/methods.md §5 "DEL"): localize, reset, fine-tune."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from memunlearn.data.splits import normalize
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import fit
from memunlearn.unlearning import METHODS, UnlearnContext
from memunlearn.unlearning.del_ import channel_scores, criticality, localize, masked_finetune, reset, topk_size

CPU = torch.device("cpu")
THRESHOLD = 0.3


@pytest.fixture(scope="module")
def model(synthetic, tiny_recipe):
    """A briefly trained model: BatchNorm weights have moved off their init, so a reset of any entry changes it."""
    train, test, info, _ = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    fit(model, train, info, dataclasses.replace(tiny_recipe, epochs=3), generator(0, "del_test"), CPU)
    return model


@pytest.fixture(scope="module")
def forget(synthetic):
    train, _, _, flipped = synthetic
    return train.select_ids(flipped)


def unit_rows(t: torch.Tensor) -> torch.Tensor:
    """A channel per row for >= 2-D tensors, an entry per row for 1-D ones."""
    return t.reshape(t.shape[0], -1) if t.dim() >= 2 else t.reshape(-1, 1)


def test_reset_changes_exactly_the_selected_fraction_and_only_it(model, forget, synthetic):
    info = synthetic[2]
    masks = localize(model, forget, info, CPU, THRESHOLD)
    fresh = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=123)
    original = copy.deepcopy(model)
    out = reset(copy.deepcopy(model), masks, fresh)

    total = sum(p.numel() for p in model.parameters())
    selected = sum(int(m.sum()) for m in masks.values())
    largest_unit = max(unit_rows(p).shape[1] for p in model.parameters())
    assert THRESHOLD * total - largest_unit < selected <= THRESHOLD * total  # whole channels within the budget
    changed = 0
    fresh_params = dict(fresh.named_parameters())
    for name, p in out.named_parameters():
        before, mask = dict(original.named_parameters())[name], masks[name]
        assert torch.equal(p[~mask], before[~mask]), name  # unselected: bit-identical
        assert torch.equal(p[mask], fresh_params[name][mask]), name  # selected: the fresh init's values
        changed += int((p != before).sum())
    assert changed == selected  # every selected entry moved (fresh init differs from trained weights)
    for name, b in out.named_buffers():  # BatchNorm running statistics are not reset
        assert torch.equal(b, dict(original.named_buffers())[name]), name


def test_mask_is_channel_granular_for_multidim_tensors(model, forget, synthetic):
    masks = localize(model, forget, synthetic[2], CPU, THRESHOLD)
    partly = 0
    for name, mask in masks.items():
        if mask.dim() >= 2:
            rows = unit_rows(mask)
            assert bool((rows.all(1) | ~rows.any(1)).all()), f"{name}: a channel is partly selected"
            partly += bool(rows.any()) and not bool(rows.all())  # some channels in, some out
    assert partly >= 1  # the test would be vacuous if every tensor were all-in or all-out


def independent_scores(model, forget, info) -> dict[str, torch.Tensor]:
    """S = |θ ⊙ ∇_θ CE_F| (one batch holding all of F, eval mode), then each channel's mean of its top k,
    k = 10% of the number of output channels (reference generate_mask.py), at least 1."""
    m = copy.deepcopy(model).eval()
    F.cross_entropy(m(normalize(forget.images, info)), forget.labels).backward()
    scores = {}
    for name, p in m.named_parameters():
        s = (p.detach() * p.grad).abs()
        if s.dim() >= 2:
            rows = s.reshape(s.shape[0], -1)
            k = min(rows.shape[1], max(1, int(0.1 * rows.shape[0])))
            s = rows.sort(dim=1, descending=True).values[:, :k].mean(1)  # (out_channels,)
        scores[name] = s.reshape(-1)  # per unit
    return scores


def test_selection_is_a_prefix_of_the_criticality_ranking(model, forget, synthetic):
    info = synthetic[2]
    batch = len(forget)  # one batch: the sum over batches is then the plain gradient
    raw = criticality(model, forget, info, CPU, batch_size=batch)
    m = copy.deepcopy(model).eval()
    F.cross_entropy(m(normalize(forget.images, info)), forget.labels).backward()
    for name, p in m.named_parameters():
        assert torch.allclose(raw[name], (p.detach() * p.grad).abs(), rtol=1e-5, atol=1e-9), name

    masks = localize(model, forget, info, CPU, THRESHOLD, batch_size=batch)
    scores = independent_scores(model, forget, info)
    chosen = torch.cat([unit_rows(masks[n])[:, 0] for n in scores])
    unit = torch.cat(list(scores.values()))
    assert unit[chosen].min() >= unit[~chosen].max()  # every selected unit outranks every unselected one


def test_finetune_moves_only_selected_entries_and_the_head(model, forget, synthetic, tiny_recipe):
    train, _, info, flipped = synthetic
    retain = train.drop_ids(flipped)
    method = METHODS.get("del")
    cfg = method.config({"epochs": 1, "batch_size": 32})
    ctx = UnlearnContext(info, tiny_recipe, CPU, seed=0)
    masks = localize(model, forget, info, CPU, cfg.threshold, batch_size=cfg.batch_size)
    out = method.run(copy.deepcopy(model), forget, retain, cfg, ctx)
    again = method.run(copy.deepcopy(model), forget, retain, cfg, ctx)

    before = dict(model.named_parameters())
    for name, p in out.named_parameters():
        if not name.startswith("head."):
            assert torch.equal(p[~masks[name]], before[name][~masks[name]]), name
    assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(), again.state_dict().values()))  # seeded

    nothing = {name: torch.zeros_like(m) for name, m in masks.items()}  # an empty mask: only the head may learn
    out = masked_finetune(copy.deepcopy(model), retain, nothing, cfg, info, generator(0, "del_test"), CPU)
    for name, p in out.named_parameters():
        assert torch.equal(p, before[name]) != name.startswith("head."), name


def test_topk_counts_ten_percent_of_output_channels_by_default():
    """Reference: int(0.1 * len(rows)) of the [out_channels, -1] view: 51 on a 512x512x3x3 conv, not 460."""
    assert topk_size(512, 512 * 9, 0.1) == 51
    assert topk_size(512, 512 * 9, 0.1, "fan_in") == 460
    assert topk_size(16, 9, 0.1) == 1 and topk_size(64, 3, 0.5) == 3  # at least 1, at most the row
    with pytest.raises(ValueError, match="topk_basis"):
        METHODS.get("del").config({"topk_basis": "rows"})


def test_channel_score_is_the_mean_of_the_top_out_channels_tenth():
    # 20 channels of 100 entries: channel c holds 0..99 scaled by c+1; k = 2 (out_channels) vs 10 (fan_in)
    s = torch.arange(1, 21, dtype=torch.float32).view(20, 1) * torch.arange(100, dtype=torch.float32)
    s = s.view(20, 4, 5, 5)
    by_out = channel_scores({"w": s})["w"].reshape(20, -1)
    by_fan = channel_scores({"w": s}, topk_basis="fan_in")["w"].reshape(20, -1)
    c = torch.arange(1, 21, dtype=torch.float32)
    assert torch.equal(by_out[:, 0], c * 98.5) and torch.equal(by_fan[:, 0], c * 94.5)
    assert bool((by_out == by_out[:, :1]).all())  # broadcast over the channel


def test_finetune_keeps_unselected_weights_bit_identical_under_weight_decay(model, forget, synthetic):
    """Weights outside the mask are restored and their momentum cleared after every step (official SalUn's
    masked training), so weight decay cannot shrink them; the head trains in full."""
    train, _, info, flipped = synthetic
    retain = train.drop_ids(flipped)
    cfg = METHODS.get("del").config({"epochs": 1, "batch_size": 32, "weight_decay": 0.05})
    masks = localize(model, forget, info, CPU, cfg.threshold, batch_size=cfg.batch_size)
    out = masked_finetune(copy.deepcopy(model), retain, masks, cfg, info, generator(0, "del_test"), CPU)
    before = dict(model.named_parameters())
    for name, p in out.named_parameters():
        if name.startswith("head."):
            assert not torch.equal(p, before[name]), name
        else:
            assert torch.equal(p[~masks[name]], before[name][~masks[name]]), name
