"""First-epoch gradient ascent (docs/methods.md §5): the recorder of per-example first-epoch gradients and the
calibrated ascent along them."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memunlearn.data import flip_labels
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import (FirstEpochGradRecorder, accuracy, fit, load_first_epoch_grads, predict_proba,
                                 save_first_epoch_grads)
from memunlearn.training.first_epoch_grads import select_parameters
from memunlearn.unlearning import METHODS, UnlearnContext
from memunlearn.unlearning.first_epoch_ga import FirstEpochGAConfig, ascend

CPU = torch.device("cpu")


def loop_grads(state: dict, x: torch.Tensor, y: torch.Tensor, names: list[str], info) -> torch.Tensor:
    """Per-example loop: BatchNorm normalizes with the batch's statistics held fixed. They come from PyTorch's own
    running-stat update with momentum 1 (unbiased variance, rescaled to the biased one train mode divides by)."""
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    model.load_state_dict(state)
    counts, hooks = {}, []  # BatchNorm module -> values per channel in the batch
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
            hooks.append(m.register_forward_hook(
                lambda mod, args, out: counts.__setitem__(mod, args[0].numel() // args[0].shape[1])))
    model.train()
    with torch.no_grad():
        train_logits = model(x)
    for m, n in counts.items():
        m.running_var.mul_((n - 1) / n)
    for h in hooks:
        h.remove()
    model.eval()
    assert torch.allclose(model(x), train_logits, atol=1e-5)  # eval mode now computes the train-mode forward
    params = [dict(model.named_parameters())[n] for n in names]
    rows = []
    for i in range(len(y)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), params)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)  # (B, P)


def test_recorder_matches_a_per_example_loop_at_every_first_epoch_step(synthetic, tiny_recipe):
    train, _, info, _ = synthetic
    recipe = dataclasses.replace(tiny_recipe, epochs=2)
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    recorder = FirstEpochGradRecorder(model, train.example_ids, ["input", "penultimate", "head"])
    steps = []  # the first epoch's (state at the step, x, y, positions)

    def on_step(model, x, y, positions):
        if len(steps) * recipe.batch_size < len(train):
            steps.append((copy.deepcopy(model.state_dict()), x.clone(), y.clone(), positions.clone()))
        recorder(model, x, y, positions)

    fit(model, train, info, recipe, generator(0, "order"), CPU, on_step=on_step)
    stored = recorder.result()
    assert stored.names == ("features.0.0.weight", "fc.1.weight", "fc.1.bias", "head.weight", "head.bias")
    assert stored.factored == ("fc.1.weight", "head.weight")  # Linear weights: stored as [δ_i, a_i]
    out_features, in_features = dict(model.named_parameters())["fc.1.weight"].shape
    assert stored.widths()[1] == out_features + in_features < out_features * in_features
    assert stored.grads.shape[1] == sum(stored.widths())
    assert torch.equal(torch.cat([p for _, _, _, p in steps]).sort().values, torch.arange(len(train)))
    for state, x, y, positions in steps:
        expected = loop_grads(state, x, y, list(stored.names), info)
        per = stored.per_example(train.example_ids[positions])  # factored layers expanded to δ_i a_iᵀ
        got = torch.cat([per[n].flatten(1) for n in stored.names], dim=1)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), (got - expected).abs().max()
    assert stored.grads.abs().sum(1).min() > 0


def test_recording_leaves_training_unchanged_and_round_trips(synthetic, tiny_recipe, tmp_path):
    train, _, info, _ = synthetic
    recipe = dataclasses.replace(tiny_recipe, epochs=2)
    plain = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    fit(plain, train, info, recipe, generator(0, "order"), CPU)
    recorded = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    recorder = FirstEpochGradRecorder(recorded, train.example_ids, ["input"])
    fit(recorded, train, info, recipe, generator(0, "order"), CPU, on_step=recorder)
    for (name, a), b in zip(plain.state_dict().items(), recorded.state_dict().values()):
        assert torch.equal(a, b), name  # parameters and BatchNorm statistics bit-identical

    save_first_epoch_grads(recorder.result(), tmp_path / "g.pt")
    loaded = load_first_epoch_grads(tmp_path / "g.pt")
    ids = train.example_ids[[5, 2, 9]]
    assert torch.equal(loaded.rows(ids), recorder.grads[[5, 2, 9]])
    assert torch.allclose(loaded.summed(ids)["features.0.0.weight"].flatten(), recorder.grads[[5, 2, 9]].sum(0))
    with pytest.raises(ValueError, match="lack 1 requested example"):
        loaded.rows([999_999])


def test_input_layer_alias_and_unknown_layer():
    assert select_parameters(build_model("small_cnn", 1, 4, 8, seed=0), ["input"]) == ["features.0.0.weight"]
    assert select_parameters(build_model("resnet18_cifar", 3, 4, 32, seed=0), ["input"]) == ["stem.0.weight"]
    with pytest.raises(ValueError, match="'conv9' matches no parameter"):
        select_parameters(build_model("small_cnn", 1, 4, 8, seed=0), ["conv9"])


@pytest.fixture(scope="module")
def memorized(synthetic, tiny_recipe):
    """A model that memorized the flipped labels F, and its first-epoch gradients."""
    train, _, info, flipped = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    recorder = FirstEpochGradRecorder(model, train.example_ids, ["input"])
    fit(model, train, info, tiny_recipe, generator(0, "order"), CPU, on_step=recorder)
    return model, recorder.result(), train.select_ids(flipped)


def forget_metric(model, data, target, info) -> float:
    probs = predict_proba(model, data, info, CPU)
    if target == "accuracy":
        return accuracy(probs, data.labels)
    return float(-probs.gather(1, data.labels.view(-1, 1)).log().mean())


@pytest.mark.parametrize("target", ["accuracy", "loss"])
@pytest.mark.parametrize("step_size", [0.02, 2.0])  # 2.0: the first step overshoots and must shrink
def test_ascent_stops_at_the_heldout_level_without_overshooting(memorized, synthetic, target, step_size):
    model, stored, forget = memorized
    test, info = synthetic[1], synthetic[2]
    heldout, _ = flip_labels(test, 0.5, info.num_classes, seed=1)  # accuracy ~0.5: a target inside the path
    cfg = FirstEpochGAConfig(step_size=step_size, target=target, max_steps=200)
    direction = stored.summed(forget.example_ids)
    out, trace = ascend(copy.deepcopy(model), direction, forget, heldout, cfg, info, CPU)

    goal = forget_metric(model, heldout, target, info)
    before, after = forget_metric(model, forget, target, info), forget_metric(out, forget, target, info)
    assert trace.reached and len(trace.etas) >= 1  # one accepted step may land in the window (numeric path)
    # the model just before the last step, rebuilt from the original along Σ g_i (the original after one step)
    previous = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in previous.named_parameters():
            if name in direction:
                p.add_(direction[name], alpha=sum(trace.etas[:-1]))
    prev = forget_metric(previous, forget, target, info)
    if target == "accuracy":
        assert before > goal + 0.3  # far from the target at the start
        assert goal - max(cfg.tolerance, 1 / len(forget)) <= after <= goal  # at or just below
        assert prev > goal  # the step before stopping was above
    else:
        assert before < goal - 1.0
        assert goal <= after <= goal + cfg.tolerance
        assert prev < goal
    if step_size == 2.0:
        assert trace.shrinks >= 1
    changed = [n for n, p in out.named_parameters() if not torch.equal(p, dict(model.named_parameters())[n])]
    assert changed == ["features.0.0.weight"]  # only the stored (input) layer moves


def test_method_without_stored_gradients_says_how_to_fix(memorized, synthetic, tiny_recipe):
    model, _, forget = memorized
    train, test, info, flipped = synthetic
    method = METHODS.get("first_epoch_ga")
    ctx = UnlearnContext(info, tiny_recipe, CPU, seed=0, heldout=test)
    with pytest.raises(ValueError, match="enable train_records.first_epoch_grads and rerun the train stage"):
        method.run(copy.deepcopy(model), forget, train.drop_ids(flipped), method.config({}), ctx)


# ---- issue 14, item 3: default layers and calibration targets ----------------------

def test_default_layers_are_head_and_penultimate_not_the_input_conv():
    from memunlearn.training import RecordConfig
    from memunlearn.training.first_epoch_grads import DEFAULT_LAYERS

    assert RecordConfig().first_epoch_grads == DEFAULT_LAYERS == ("head", "penultimate")
    small = build_model("small_cnn", 1, 4, 8, seed=0)
    assert select_parameters(small, DEFAULT_LAYERS) == ["fc.1.weight", "fc.1.bias", "head.weight", "head.bias"]
    resnet = build_model("resnet18_cifar", 3, 4, 32, seed=0)
    assert select_parameters(resnet, ["penultimate"]) == ["layers.7.conv2.weight"]
    recorder = FirstEpochGradRecorder(small, torch.arange(3))
    assert recorder.names == select_parameters(small, DEFAULT_LAYERS)


def test_gap_calibration_tracks_the_retain_level_plus_the_original_gap(memorized, synthetic):
    model, stored, forget = memorized
    train, test, info, flipped = synthetic
    heldout, _ = flip_labels(test, 0.5, info.num_classes, seed=1)
    retain = train.drop_ids(flipped)
    cfg = FirstEpochGAConfig(step_size=0.02, target="accuracy", calibration="gap", max_steps=200)
    out, trace = ascend(copy.deepcopy(model), stored.summed(forget.example_ids), forget, heldout, cfg, info, CPU,
                        retain)
    gap = forget_metric(model, retain, "accuracy", info) - forget_metric(model, heldout, "accuracy", info)
    goal = forget_metric(out, retain, "accuracy", info) - gap  # the goal at the end, as accuracy
    after = forget_metric(out, forget, "accuracy", info)
    assert trace.reached
    assert goal - max(cfg.tolerance, 1 / len(forget)) <= after <= goal + 1e-9
    assert trace.goal == pytest.approx(-goal)
    with pytest.raises(ValueError, match="needs the retain set"):
        ascend(copy.deepcopy(model), stored.summed(forget.example_ids), forget, heldout, cfg, info, CPU)
    with pytest.raises(ValueError, match="calibration"):
        METHODS.get("first_epoch_ga").config({"calibration": "oracle"})


def test_a_store_too_large_is_refused_before_allocating():
    resnet = build_model("resnet18_cifar", 3, 10, 32, seed=0)
    with pytest.raises(ValueError, match=r"^train_records\.first_epoch_grads: .* GiB limit \(MEMUNLEARN_MAX_BUFFER_GIB\); "
                                         r"choose smaller or Linear layers"):
        FirstEpochGradRecorder(resnet, torch.arange(50_000))  # penultimate = a 2.4M-weight conv, stored dense
    assert FirstEpochGradRecorder(resnet, torch.arange(50_000), ["head"]).grads.shape == (50_000, 10 + 512 + 10)


def test_layers_picks_stored_layers_and_names_unrecorded_ones(synthetic, tiny_recipe):
    """The layer ablation: ``layers`` ascends along some stored layers only; others stay bit-identical."""
    train, test, info, flipped = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    recorder = FirstEpochGradRecorder(model, train.example_ids, ["input", "head"])
    fit(model, train, info, tiny_recipe, generator(0, "order"), CPU, on_step=recorder)
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    heldout, _ = flip_labels(test, 0.5, info.num_classes, seed=1)  # a goal below F's accuracy: the ascent moves
    ctx = UnlearnContext(info, tiny_recipe, CPU, seed=0, first_epoch_grads=recorder.result(), heldout=heldout)
    method = METHODS.get("first_epoch_ga")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="were not recorded"):  # the default [head, penultimate]: fc.1 is not stored
        method.run(copy.deepcopy(model), forget, retain, method.config({}), ctx)
    for layers, moved in (([], {"features.0.0.weight", "head.weight", "head.bias"}),
                          (["head"], {"head.weight", "head.bias"}), (["input"], {"features.0.0.weight"})):
        out = method.run(copy.deepcopy(model), forget, retain, method.config({"layers": layers}), ctx)
        changed = {n for n, p in out.named_parameters() if not torch.equal(p, before[n])}
        assert changed == moved, layers
    with pytest.raises(ValueError, match=r"\['fc.1.weight', 'fc.1.bias'\] were not recorded; add them to "
                                         r"train_records.first_epoch_grads"):
        method.run(copy.deepcopy(model), forget, retain, method.config({"layers": ["penultimate"]}), ctx)
