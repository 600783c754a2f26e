"""train.precision (bf16 autocast), the engine's normalize-once inputs, and memorize.num_models: auto."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memunlearn.config import ConfigError, from_params
from memunlearn.data.splits import normalize
from memunlearn.memorization import ExactConfig, SubsetModelStore, dataset_fingerprint, store_key, train_subset_models
from memunlearn.memorization import engine, exact
from memunlearn.memorization.exact import split_half_pearson
from memunlearn.memorization.store import key_for
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit, predict_proba
from memunlearn.training import recipe as recipe_module
from memunlearn.training.loop import normalized_inputs
from memunlearn.training.recipe import autocast, resolve_precision
from memunlearn.unlearning import UnlearnConfig, UnlearnContext, run_strategy

CPU = torch.device("cpu")
RECIPE = TrainConfig(model="small_cnn", epochs=2, batch_size=32, lr=0.05, weight_decay=5e-4, device="cpu")


def _conv_dtypes(model: nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("precision, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_training_and_scoring_run_in_the_precision_asked_for(synthetic, precision, expected):
    train, _, info, _ = synthetic
    model = build_model("small_cnn", 1, 4, 8, seed=0)
    seen = _conv_dtypes(model)
    history = fit(model, train, info, dataclasses.replace(RECIPE, precision=precision), generator(0, "o"), CPU)
    assert seen and set(seen) == {expected}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: weights stay fp32
    assert all(0 < row["train_loss"] < 10 for row in history)
    seen.clear()
    probs = predict_proba(model, train, info, CPU, precision=precision)
    assert set(seen) == {expected} and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(len(train)))


def test_bf16_changes_the_model_and_fp32_equals_the_plain_loop(synthetic):
    """fp32 is the plain fp32 SGD loop bit for bit; bf16 really computes something else (close, not equal)."""
    train, _, info, _ = synthetic
    fp32 = build_model("small_cnn", 1, 4, 8, seed=0)
    bf16 = build_model("small_cnn", 1, 4, 8, seed=0)
    plain = build_model("small_cnn", 1, 4, 8, seed=0).to(memory_format=RECIPE.memory_format)  # the recipe's layout
    fit(fp32, train, info, RECIPE, generator(0, "o"), CPU)
    fit(bf16, train, info, dataclasses.replace(RECIPE, precision="bf16"), generator(0, "o"), CPU)
    optimizer = torch.optim.SGD(plain.parameters(), lr=RECIPE.lr, momentum=RECIPE.momentum,
                                weight_decay=RECIPE.weight_decay)
    gen = generator(0, "o")
    plain.train()
    for _ in range(RECIPE.epochs):
        for positions in torch.randperm(len(train), generator=gen).split(RECIPE.batch_size):
            loss = F.cross_entropy(plain(normalize(train.images[positions], info)), train.labels[positions])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for (name, a), b, c in zip(fp32.state_dict().items(), plain.state_dict().values(), bf16.state_dict().values()):
        assert torch.equal(a, b), name
    weights = [name for name, _ in fp32.named_parameters()]
    assert any(not torch.equal(fp32.state_dict()[n], bf16.state_dict()[n]) for n in weights)
    for n in weights:
        torch.testing.assert_close(bf16.state_dict()[n], fp32.state_dict()[n], atol=0.1, rtol=0.1)


def test_normalizing_once_gives_the_same_model_and_scores_bit_for_bit(synthetic):
    train, test, info, _ = synthetic
    a, b = build_model("small_cnn", 1, 4, 8, seed=1), build_model("small_cnn", 1, 4, 8, seed=1)
    a, b = a.to(memory_format=torch.channels_last), b.to(memory_format=torch.channels_last)
    fit(a, train, info, RECIPE, generator(0, "o"), CPU)
    fit(b, train, info, RECIPE, generator(0, "o"), CPU, inputs=normalized_inputs(train, info, CPU, True))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert torch.equal(predict_proba(a, test, info, CPU),
                       predict_proba(b, test, info, CPU, inputs=normalized_inputs(test, info, CPU, True)))


def test_the_recipe_layout_trains_and_unlearns_in_it_and_keys_the_store(synthetic):
    """train.channels_last: fit and every unlearning strategy put the weights in the recipe's layout; the two
    layouts give different last bits, so they never share a stored model."""
    train, test, info, _ = synthetic
    # a conv weight with several input channels (with one, both layouts have the same strides)
    conv = lambda model: next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)  # noqa: E731
    models = {}
    for flag in (True, False):
        recipe = dataclasses.replace(RECIPE, channels_last=flag)
        model = build_model("small_cnn", 1, 4, 8, seed=0)
        fit(model, train, info, recipe, generator(0, "o"), CPU)
        assert conv(model).is_contiguous(memory_format=torch.channels_last) == flag
        assert conv(model).is_contiguous() != flag
        models[flag] = model
        unlearned = build_model("small_cnn", 1, 4, 8, seed=0)
        ctx = UnlearnContext(info, recipe, CPU, 0)
        plan = UnlearnConfig(method="finetune", strategy="vanilla").plan({"finetune": {"epochs": 1}})
        run_strategy("vanilla", unlearned, {"low": train.take(torch.arange(8))}, test, plan, ctx)
        assert conv(unlearned).is_contiguous(memory_format=torch.channels_last) == flag
    assert any(not torch.equal(a, b) for a, b in zip(models[True].state_dict().values(),
                                                      models[False].state_dict().values()))
    fingerprint = dataset_fingerprint(train, test)
    assert store_key(fingerprint, RECIPE, 0.7, 0) != store_key(
        fingerprint, dataclasses.replace(RECIPE, channels_last=not RECIPE.channels_last), 0.7, 0)


def test_precision_is_in_the_store_key_and_auto_resolves_before_it(synthetic, monkeypatch):
    train, test, info, _ = synthetic
    fingerprint = dataset_fingerprint(train, test)
    fp32 = store_key(fingerprint, RECIPE, 0.7, 0)
    bf16 = store_key(fingerprint, dataclasses.replace(RECIPE, precision="bf16"), 0.7, 0)
    assert fp32 != bf16
    with pytest.raises(ValueError, match="concrete train.precision"):
        store_key(fingerprint, dataclasses.replace(RECIPE, precision="auto"), 0.7, 0)
    auto = dataclasses.replace(RECIPE, precision="auto")
    for supported, key in ((True, bf16), (False, fp32)):  # two machines that resolve auto differently
        monkeypatch.setattr(recipe_module, "bf16_supported", lambda device, s=supported: s)
        assert resolve_precision("auto", CPU) == ("bf16" if supported else "fp32")
        assert key_for(train, test, auto, ExactConfig(), CPU) == store_key(fingerprint, dataclasses.replace(
            RECIPE, precision=resolve_precision("auto", CPU)), 0.7, 0) == key
        with autocast("auto", CPU):
            assert torch.is_autocast_enabled("cpu") == supported


def test_a_bad_precision_or_num_models_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"^train.precision must be one of \['fp32', 'bf16', 'auto'\], got 'bf61'$"):
        from_params(TrainConfig, {"precision": "bf61"}, "train")
    with pytest.raises(ConfigError, match=r'^memorize.num_models: got "atuo"; write an integer or auto, e.g. 16$'):
        from_params(ExactConfig, {"num_models": "atuo"}, "memorize")
    with pytest.raises(ConfigError, match=r"^memorize.max_models must be >= memorize.round_models"):
        from_params(ExactConfig, {"num_models": "auto", "max_models": 4}, "memorize")
    with pytest.raises(ConfigError, match=r"^memorize.round_models must be an even number"):
        from_params(ExactConfig, {"round_models": 3}, "memorize")
    assert from_params(ExactConfig, {"num_models": "auto"}, "memorize").adaptive


# ---- num_models: auto ------------------------------------------------------------------------------------------

@pytest.fixture
def count_trainings(monkeypatch):
    calls = []
    real = engine.fit

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "fit", counted)
    return calls


def _scripted(monkeypatch, values: dict[int, float]):
    """split_half_pearson answers ``values[K]`` (K = models passed): the stopping rule, apart from the scores."""
    seen = []

    def fake(runs, example_ids, score="mem_prob"):
        seen.append(len(runs))
        return values[len(runs)]

    monkeypatch.setattr(exact, "split_half_pearson", fake)
    return seen


AUTO = ExactConfig(num_models="auto", round_models=2, max_models=6, stable_pearson=0.8)


def test_auto_stops_at_the_first_round_that_is_stable(synthetic, monkeypatch, count_trainings):
    train, test, info, _ = synthetic
    checked = _scripted(monkeypatch, {2: 0.3, 4: 0.85, 6: 0.99})
    result = train_subset_models(train, test, info, RECIPE, AUTO, CPU)
    assert checked == [2, 4] and len(result.runs) == 4 and len(count_trainings) == 4
    assert result.stable is True and result.split_half_pearson == 0.85
    assert [run.index for run in result.runs] == [0, 1, 2, 3]


def test_auto_respects_the_cap(synthetic, monkeypatch, count_trainings):
    train, test, info, _ = synthetic
    checked = _scripted(monkeypatch, {2: 0.1, 4: 0.2, 6: 0.3})
    result = train_subset_models(train, test, info, RECIPE, AUTO, CPU)
    assert checked == [2, 4, 6] and len(result.runs) == 6 and len(count_trainings) == 6
    assert result.stable is False and result.split_half_pearson == 0.3


def test_growing_the_cap_trains_only_the_new_models(synthetic, monkeypatch, count_trainings, tmp_path):
    train, test, info, _ = synthetic
    _scripted(monkeypatch, {2: 0.1, 4: 0.2, 6: 0.3, 8: 0.95})
    store = SubsetModelStore(tmp_path, "k")
    first = train_subset_models(train, test, info, RECIPE, AUTO, CPU, store)
    assert len(count_trainings) == 6 and first.trained == list(range(6))
    grown = train_subset_models(train, test, info, RECIPE, dataclasses.replace(AUTO, max_models=10), CPU, store)
    assert len(count_trainings) == 8  # models 6 and 7 only; 0..5 come from the store
    assert grown.trained == [6, 7] and grown.reused == list(range(6)) and grown.stable is True
    fixed = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=8), CPU, store)
    assert len(count_trainings) == 8 and fixed.trained == []  # K = 8 fixed: the same models


def test_auto_reports_the_real_criterion_on_the_models_it_kept(synthetic):
    """Unscripted: the reported value is the split-half Pearson r of mem_prob over the K models returned, and K is
    the first round whose value reaches the threshold (or the cap)."""
    train, test, info, _ = synthetic
    config = dataclasses.replace(AUTO, stable_pearson=0.5)
    result = train_subset_models(train, test, info, RECIPE, config, CPU)
    ids = train.example_ids.numpy()
    K = len(result.runs)
    assert result.split_half_pearson == split_half_pearson(result.runs, ids)
    assert result.stable == (result.split_half_pearson >= 0.5)
    assert result.stable or K == config.max_models
    for k in range(config.round_models, K, config.round_models):  # every earlier round was below the threshold
        assert not split_half_pearson(result.runs[:k], ids) >= 0.5  # NaN (too few models per half) included
