"""Every registry rejects unknown names with the list of valid ones; configs reject bad params."""
import pytest

from memunlearn.config import ConfigError, from_params
from memunlearn.data import DATASETS, PrepareConfig
from memunlearn.evaluation import MIA_FEATURES
from memunlearn.memorization import PROXIES
from memunlearn.models import MODELS
from memunlearn.partition import FORGET_KINDS, PartitionConfig
from memunlearn.registry import Registry, UnknownNameError
from memunlearn.unlearning import METHODS, STRATEGIES
from memunlearn.unlearning import UnlearnConfig

REGISTRIES = [DATASETS, MODELS, PROXIES, METHODS, STRATEGIES, FORGET_KINDS, MIA_FEATURES]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_unknown_name_lists_the_choices(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.get("no_such_thing")
    message = str(err.value)
    assert "no_such_thing" in message
    assert all(name in message for name in registry.names())
    assert "\n" not in message


def test_registering_a_name_twice_is_an_error():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", 2)


def test_the_issue_minimum_is_registered():
    assert {"retrain", "finetune", "neggrad_plus"} <= set(METHODS.names())
    assert {"vanilla", "rum"} <= set(STRATEGIES.names())
    assert {"confidence", "max_conf", "entropy", "binary_acc"} <= set(PROXIES.names())
    assert {"small_cnn", "resnet18_cifar"} <= set(MODELS.names())
    assert {"mnist_embedded", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"} <= set(DATASETS.names())


def test_unknown_param_key_names_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epochz'\].*valid keys: .*'noise_fraction'"):
        from_params(PrepareConfig, {"epochz": 3}, "data")


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fraction_outside_unit_interval_is_rejected(value):
    with pytest.raises(ConfigError, match=r"data.noise_fraction must lie in \[0, 1\]"):
        from_params(PrepareConfig, {"noise_fraction": value}, "data")


def test_unknown_dataset_in_params_is_rejected():
    with pytest.raises(UnknownNameError, match="unknown dataset 'imagenet'; choose one of: cifar10"):
        from_params(PrepareConfig, {"dataset": "imagenet"}, "data")


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="partition.size must be int"):
        from_params(PartitionConfig, {"size": "many"}, "partition")


def test_unknown_method_and_bad_hyperparameters_fail_before_any_work():
    with pytest.raises(UnknownNameError, match="unknown unlearning method 'forgetall'"):
        from_params(UnlearnConfig, {"method": "forgetall"}, "unlearn").plan({})
    config = from_params(UnlearnConfig, {"method": "neggrad_plus"}, "unlearn")
    with pytest.raises(ConfigError, match=r"methods.neggrad_plus.alpha must lie in \[0, 1\]"):
        config.plan({"neggrad_plus": {"alpha": 2.0}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lrr'\] in params section 'methods.finetune'"):
        from_params(UnlearnConfig, {"method": "finetune"}, "unlearn").plan({"finetune": {"lrr": 0.1}})
