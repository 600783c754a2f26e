"""Every registry rejects unknown names with the list of valid ones and lives where rule 3 says; configs reject
bad params."""
import ast
import importlib
from pathlib import Path

import pytest

from memunlearn.config import ConfigError, from_params
from memunlearn.data import DATASETS, TEXT_CORPORA, PrepareConfig
from memunlearn.evaluation import MIA_FEATURES
from memunlearn.memorization import PROXIES
from memunlearn.modality import MODALITIES
from memunlearn.models import LM_MODELS, MODELS
from memunlearn.partition import FORGET_KINDS, PartitionConfig
from memunlearn.registry import Registry, UnknownNameError
from memunlearn.unlearning import METHODS, STRATEGIES, UnlearnConfig

REGISTRIES = [DATASETS, TEXT_CORPORA, MODELS, LM_MODELS, PROXIES, METHODS, STRATEGIES, FORGET_KINDS, MIA_FEATURES,
              MODALITIES]
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memunlearn"
# docs/architecture.md rule 3: a registry's base module holds it, its entry type and its decorator, and imports
# none of its entries. In a package that is base.py; a concept that is a single module is its own base module.
HOMES = {
    "DATASETS": "memunlearn.data.base",
    "MODELS": "memunlearn.models.base",
    "TEXT_CORPORA": "memunlearn.data.base",
    "LM_MODELS": "memunlearn.models.base",
    "PROXIES": "memunlearn.memorization.proxies.base",
    "METHODS": "memunlearn.unlearning.base",
    "STRATEGIES": "memunlearn.unlearning.base",
    "FORGET_KINDS": "memunlearn.partition",
    "MIA_FEATURES": "memunlearn.evaluation.mia",
    "MODALITIES": "memunlearn.modality.base",
}


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_unknown_name_lists_the_choices(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.get("no_such_thing")
    message = str(err.value)
    assert "no_such_thing" in message
    assert all(name in message for name in registry.names())
    assert "\n" not in message


def test_each_registry_is_defined_in_its_base_module_and_nowhere_else():
    assert len(HOMES) == len(REGISTRIES)
    for name, module in HOMES.items():
        registry = getattr(importlib.import_module(module), name)
        assert registry in REGISTRIES, f"{module}.{name} is not the registry the package exports"
        source = (PACKAGE.parent / (module.replace(".", "/") + ".py")).read_text()
        assert f"{name}: Registry" in source, f"{name} is not defined in {module}"
    defined = [p for p in PACKAGE.rglob("*.py") if "= Registry(" in p.read_text()]
    assert {p.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".") for p in defined} \
        == set(HOMES.values())


def test_package_inits_only_import():
    """``__init__.py`` holds a docstring, imports and ``__all__`` (``__version__``): nothing its members import back."""
    for init in PACKAGE.rglob("__init__.py"):
        for node in ast.parse(init.read_text()).body:
            allowed = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
                isinstance(node, ast.Assign) and [t.id for t in node.targets] in (["__all__"], ["__version__"]))
            assert allowed, f"{init.relative_to(PACKAGE)} line {node.lineno}: only imports belong in __init__.py"


def test_no_import_order_loops_held_by_noqa():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "noqa: E402" in p.read_text()]
    assert not offenders, f"imports after code (an import-order loop?) in {offenders}"


def test_the_names_importable_before_the_move_still_are():
    from memunlearn import data, memorization, models, training, unlearning
    from memunlearn.memorization import proxies

    before = {
        unlearning: ["METHODS", "Method", "STRATEGIES", "StepRecord", "UnlearnContext", "UnlearnPlan", "register_method",
                     "run_strategy", "del_", "retrain"],
        models: ["MODELS", "build_model"],
        proxies: ["PROXIES", "Proxy", "ProxyConfig", "ProxyInputs", "compute_proxies", "proxy_costs", "register_proxy",
                  "score_columns", "recorded_proxies", "COST_SOURCES", "confidence"],
        data: ["DATASETS", "RawDataset", "PrepareConfig"],
        training: ["RecordConfig", "TrainConfig", "CurvatureRecorder"],
        memorization: ["PROXIES", "ProxyConfig", "ProxyInputs", "compute_proxies", "proxy_costs"],
    }
    for package, names in before.items():
        missing = [n for n in names if not hasattr(package, n)]
        assert not missing, f"{package.__name__} lost {missing}"


def test_models_pickled_before_the_architectures_moved_still_load():
    """MLflow pickles a registered model with its class's module path: the old paths still name the classes."""
    import importlib

    from memunlearn.models import ARCHITECTURES

    for old, cls in (("small_cnn", "SmallCNN"), ("resnet", "ResNet18"), ("gpt2", "GPT2LM")):
        moved = next(module for _, module, _ in ARCHITECTURES.values() if module.endswith(old))
        assert getattr(importlib.import_module(f"memunlearn.models.{old}"), cls) is getattr(
            importlib.import_module(f"memunlearn.modality.{moved}"), cls)


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
    with pytest.raises(ConfigError, match=r"^data.epochz: unknown key; valid keys: .*noise_fraction"):
        from_params(PrepareConfig, {"epochz": 3}, "data")


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fraction_outside_unit_interval_is_rejected(value):
    with pytest.raises(ConfigError, match=r"data.noise_fraction must lie in \[0, 1\]"):
        from_params(PrepareConfig, {"noise_fraction": value}, "data")


def test_unknown_dataset_in_params_is_rejected():
    with pytest.raises(UnknownNameError, match="^data.dataset: unknown dataset 'imagenet'; choose one of: cifar10"):
        from_params(PrepareConfig, {"dataset": "imagenet"}, "data")


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match=r'^partition.size: got "many"; write an integer, e.g. 300$'):
        from_params(PartitionConfig, {"size": "many"}, "partition")


def test_unknown_method_and_bad_hyperparameters_fail_before_any_work():
    with pytest.raises(UnknownNameError, match="unknown unlearning method 'forgetall'"):
        from_params(UnlearnConfig, {"method": "forgetall"}, "unlearn").plan({})
    config = from_params(UnlearnConfig, {"method": "neggrad_plus"}, "unlearn")
    with pytest.raises(ConfigError, match=r"methods.neggrad_plus.alpha must lie in \[0, 1\]"):
        config.plan({"neggrad_plus": {"alpha": 2.0}})
    with pytest.raises(ConfigError, match=r"^methods.finetune.lrr: unknown key; valid keys: batch_size, epochs, lr,"):
        from_params(UnlearnConfig, {"method": "finetune"}, "unlearn").plan({"finetune": {"lrr": 0.1}})
