"""The reference recipes (issue 26): per-batch crop + flip, the cosine schedule, and a recipe per role (original,
subset models, oracle) merged over ``train`` by ``recipe_for``."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml

from memunlearn.config import ConfigError
from memunlearn.data import DatasetInfo
from memunlearn.memorization.store import store_key
from memunlearn.models import build_model
from memunlearn.params import check_params
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit
from memunlearn.training.augment import apply, augmented, draw
from memunlearn.training.loop import lr_schedule, sgd
from memunlearn.training.recipe import Augment, recipe_for, recipe_identity

CPU = torch.device("cpu")
INFO = DatasetInfo("t", 2, 1, 4, (0.5,), (0.25,))  # normalize(0) = (0 - 0.5) / 0.25 = -2


def test_a_crop_shifts_the_padded_image_and_a_flip_mirrors_it():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4).repeat(3, 1, 1, 1)  # (3, 1, 4, 4)
    dy, dx, flip = torch.tensor([1, 0, 1]), torch.tensor([1, 0, 1]), torch.tensor([False, False, True])
    out = apply(x, (dy, dx, flip), 1, INFO)
    torch.testing.assert_close(out[0], x[0])  # offset (padding, padding) of the padded image: the image itself
    assert out[1, 0, 0].tolist() == [-2.0, -2.0, -2.0, -2.0]  # offset (0, 0): down by 1, the top row is padding
    assert out[1, 0, 1:, 0].tolist() == [-2.0, -2.0, -2.0]  # and right by 1: the left column too
    torch.testing.assert_close(out[1, 0, 1:, 1:], x[1, 0, :3, :3])
    torch.testing.assert_close(out[2], x[2].flip(-1))  # centred crop, mirrored


def test_no_augmentation_draws_nothing_and_returns_the_batch():
    x, gen = torch.randn(5, 1, 4, 4), torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert augmented(x, Augment(), gen, INFO) is x
    assert torch.equal(gen.get_state(), state)


def test_draws_cover_every_offset_and_both_flips():
    dy, dx, flip = draw(Augment(crop_padding=4, flip=True), 4000, torch.Generator().manual_seed(0))
    assert set(dy.tolist()) == set(range(9)) and set(dx.tolist()) == set(range(9))
    assert 0.45 < flip.float().mean() < 0.55


def test_an_augmented_run_repeats_and_differs_from_the_plain_one(synthetic):
    train, _, info, _ = synthetic
    recipe = TrainConfig(epochs=2, batch_size=32, device="cpu")
    runs = {}
    for name, aug in (("plain", Augment()), ("a", Augment(2, True)), ("b", Augment(2, True))):
        model = build_model("small_cnn", 1, 4, 8, seed=0)
        fit(model, train, info, dataclasses.replace(recipe, augment=aug), generator(0, "o"), CPU)
        runs[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(runs["a"], runs["b"])
    assert (runs["a"] - runs["plain"]).abs().max() > 1e-3


def test_the_cosine_schedule_anneals_to_zero_over_the_epochs():
    recipe = TrainConfig(epochs=4, lr=0.1, lr_schedule="cosine")
    optimizer = sgd(torch.nn.Linear(2, 2), recipe.lr)
    schedule, lrs = lr_schedule(optimizer, recipe), []
    for _ in range(recipe.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]  # 0.1, 0.085, 0.05, 0.015
    assert lrs == pytest.approx(expected, abs=1e-9)


def test_each_role_merges_its_keys_over_train_and_only_its_models_change_key():
    params = {"train": {"epochs": 5, "lr": 0.1, "augment": {"crop_padding": 4, "flip": True}},
              "memorize": {"recipe": {"epochs": 30, "lr": 0.01, "lr_milestones": [15, 20, 25],
                                      "augment": {}}},
              "oracle": {"recipe": {}}}
    original, subset, oracle = (recipe_for(params, role) for role in ("original", "subset", "oracle"))
    assert (original.epochs, original.lr, original.augment) == (5, 0.1, Augment(4, True))
    assert (subset.epochs, subset.lr, subset.lr_milestones, subset.augment) == (30, 0.01, (15, 20, 25), Augment())
    assert oracle == original
    plain = recipe_for({"train": params["train"]}, "subset")
    key = lambda recipe: store_key("data", dataclasses.replace(recipe, precision="fp32"), 0.7, 0, code="c")
    assert key(subset) != key(plain)  # memorize.recipe retrains the subset models ...
    assert recipe_identity(recipe_for({**params, "memorize": {}}, "original")) == recipe_identity(original)  # only


@pytest.mark.parametrize("block, message", [
    ({"epoch": 3}, r"^memorize\.recipe\.epoch: unknown key; valid keys: epochs, batch_size"),
    ({"model": "resnet18_cifar"}, r"^memorize\.recipe\.model: every role trains with train\.model"),
    ({"lr": "fast"}, r'^memorize\.recipe\.lr: got "fast"; write a number'),
    ({"lr_schedule": "cosine", "lr_milestones": [3]}, r"^memorize\.recipe\.lr_milestones: a cosine schedule"),
])
def test_a_bad_role_recipe_is_one_line_naming_its_key(block, message):
    with pytest.raises(ConfigError, match=message):
        recipe_for({"train": {}, "memorize": {"recipe": block}}, "subset")


def test_augmenting_text_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^oracle\.recipe\.augment: crop and flip apply to images only"):
        recipe_for({"train": {"model": "gpt2_tiny"}, "oracle": {"recipe": {"augment": {"flip": True}}}}, "oracle")


def test_check_names_every_bad_role_recipe():
    default_params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params = {**default_params, "memorize": {**default_params["memorize"], "recipe": {"epoch": 3}},
              "oracle": {**default_params["oracle"], "recipe": {"augment": {"crop_padding": -1}}}}
    problems = check_params(params)
    assert [p.split(":")[0] for p in problems] == ["memorize.recipe.epoch",
                                                   "oracle.recipe.augment.crop_padding must be >= 0, got -1"]
