"""``from_params``: strict, typed params sections; every error at once, one line each, with its key path."""
from pathlib import Path

import pytest
import yaml

from memunlearn.config import ConfigError, from_params
from memunlearn.experiments.forgetting_quality import ForgettingQualityConfig
from memunlearn.grid import GridConfig
from memunlearn.memorization.store import store_key
from memunlearn.training import TrainConfig
from memunlearn.training.recipe import Augment
from memunlearn.unlearning import METHODS, UnlearnConfig

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def errors(cls, params, section) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_params(cls, params, section)
    return str(caught.value).splitlines()


def test_a_bool_is_not_an_integer():
    assert errors(TrainConfig, {"epochs": True}, "train") == ["train.epochs: got true; write an integer, e.g. 8"]


def test_yaml_lists_are_tuples_and_integers_are_floats():
    config = from_params(TrainConfig, {"lr_milestones": [10, 20], "weight_decay": 0, "lr": 1}, "train")
    assert config.lr_milestones == (10, 20)
    assert type(config.weight_decay) is float and type(config.lr) is float and config.lr == 1.0


def test_tuple_elements_are_checked():
    assert errors(TrainConfig, {"lr_milestones": [10, "x"]}, "train") == [
        'train.lr_milestones[1]: got "x"; write an integer']


def test_mapping_values_and_optionals_are_checked():
    assert errors(UnlearnConfig, {"subset_methods": {"low": 3}, "subset_params": {"high": {"lr": 0.1}, "mid": 2}},
                  "unlearn") == ["unlearn.subset_methods.low: got 3; write text",
                                 "unlearn.subset_params.mid: got 2; write a mapping {key: value}"]
    assert errors(ForgettingQualityConfig, {"method": 5}, "forgetting_quality") == [
        "forgetting_quality.method: got 5; write text"]
    assert from_params(ForgettingQualityConfig, {"method": None}, "forgetting_quality").method is None


def test_nested_unknown_keys_name_their_full_path():
    with pytest.raises(ConfigError, match=r"^methods.salun.lrr: unknown key; valid keys: batch_size, epochs, lr, "):
        METHODS.get("salun").config({"lrr": 0.1})
    with pytest.raises(ConfigError, match=r"^ablations.partition.sizes: unknown key; valid keys: classes, "):
        from_params(GridConfig, {"partition": {"sizes": 3}}, "ablations")
    with pytest.raises(ConfigError, match=r"^unlearn.subset_params.high.lrr: unknown key; .*\(merged over methods"):
        from_params(UnlearnConfig, {"strategy": "rum_f", "subset_params": {"high": {"lrr": 0.1}}}, "unlearn")


def test_every_error_of_a_section_at_once():
    lines = errors(TrainConfig, {"epochs": True, "lr": "fast", "lr_milestones": [1, "a"], "modle": "x"}, "train")
    assert lines == [
        "train.epochs: got true; write an integer, e.g. 8",
        'train.lr: got "fast"; write a number, e.g. 0.05',
        'train.lr_milestones[1]: got "a"; write an integer',
        "train.modle: unknown key; valid keys: augment, batch_size, channels_last, device, epochs, init, lr, lr_gamma, "
        "lr_milestones, lr_schedule, model, momentum, precision, seed, weight_decay",
    ]


def test_a_number_yaml_reads_as_text_gets_its_fix():
    assert errors(TrainConfig, {"lr": "1e-3"}, "train") == [
        'train.lr: got "1e-3"; write a number (YAML reads 1e-3 as text: write 0.001)']


def test_range_checks_run_after_the_types():
    with pytest.raises(ConfigError, match=r"^train.epochs must be > 0, got 0$"):
        from_params(TrainConfig, {"epochs": 0}, "train")


def test_a_section_must_be_a_mapping():
    assert errors(TrainConfig, [1, 2], "train") == ["train: got [1, 2]; write a mapping of keys to values, e.g. {}"]
    assert from_params(TrainConfig, None, "train") == TrainConfig()


def test_the_pipeline_recipe_and_its_store_key_are_what_they_were():
    """The typed values of params.yaml are its plain YAML values (floats as floats, lists as tuples), so the
    subset-model store key, which hashes the recipe, is what the hand-written checks gave."""
    train = yaml.safe_load(PARAMS_FILE.read_text())["train"]
    recipe = from_params(TrainConfig, train, "train")
    by_hand = TrainConfig(**{**train, "lr_milestones": tuple(train["lr_milestones"]),
                             "augment": Augment(**train["augment"]),
                             **{k: float(v) for k, v in train.items() if k in ("lr", "momentum", "weight_decay",
                                                                              "lr_gamma")}})
    assert recipe == by_hand and type(recipe.weight_decay) is float
    assert store_key("data", recipe, 0.7, 0, code="c") == store_key("data", by_hand, 0.7, 0, code="c")
