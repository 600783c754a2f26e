"""The RUM controls (unlearning/rum.py): budget-matched vanilla, and rum's reference methods by default."""
from dataclasses import dataclass

import pytest
import torch

from memunlearn.config import check_positive
from memunlearn.models import build_model
from memunlearn.partition import SUBSETS
from memunlearn.unlearning import METHODS, Method, UnlearnContext, UnlearnPlan, run_strategy
from memunlearn.unlearning import REFERENCE_SUBSET_METHODS, UnlearnConfig

CPU = torch.device("cpu")


@dataclass(frozen=True)
class EpochsConfig:
    epochs: int = 5

    def validate(self) -> None:
        check_positive(self.epochs, "epochs")


@pytest.fixture
def spy(monkeypatch):
    """A method that records (forget size, epochs) of each call and changes nothing."""
    calls = []
    run = lambda model, forget, retain, cfg, ctx: calls.append((len(forget), cfg.epochs)) or model  # noqa: E731
    monkeypatch.setitem(METHODS._entries, "spy", Method("spy", EpochsConfig, run, ""))
    return calls


@pytest.fixture
def setting(synthetic, tiny_recipe):
    train, _, info, flipped = synthetic
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    subsets = {name: forget.take(part) for name, part in zip(SUBSETS, torch.arange(len(forget)).chunk(3))}
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    return model, subsets, retain, UnlearnContext(info, tiny_recipe, CPU, 0), len(forget)


def test_budget_matched_vanilla_runs_all_of_f_for_rum_f_s_total_epochs(spy, setting):
    model, subsets, retain, ctx, n_forget = setting
    plan = UnlearnPlan("spy", {"spy": {"epochs": 4}}, subset_params={"high": {"epochs": 10}})
    run_strategy("rum_f", model, subsets, retain, plan, ctx)
    rum_epochs = sum(epochs for _, epochs in spy)
    spy.clear()
    run_strategy("vanilla_budget", model, subsets, retain, plan, ctx)
    assert spy == [(n_forget, rum_epochs)] and rum_epochs == 4 + 4 + 10
    spy.clear()
    run_strategy("vanilla", model, subsets, retain, plan, ctx)
    assert spy == [(n_forget, 4)]


def test_rum_without_subset_methods_uses_the_papers_choice_not_rum_f(spy, setting, monkeypatch):
    model, subsets, retain, ctx, _ = setting
    seen = []
    for name in set(REFERENCE_SUBSET_METHODS.values()):
        monkeypatch.setitem(METHODS._entries, name, Method(name, METHODS.get(name).config_cls,
                                                           lambda m, f, r, c, x, n=name: seen.append(n) or m, ""))
    _, records = run_strategy("rum", model, subsets, retain, UnlearnPlan("spy"), ctx)
    assert [(r.subset, r.method) for r in records] == list(REFERENCE_SUBSET_METHODS.items())
    assert REFERENCE_SUBSET_METHODS == {"low": "none", "mid": "finetune", "high": "salun"}
    assert spy == []  # the plan's method runs at no step
    config = UnlearnConfig(method="neggrad_plus", strategy="rum")
    assert config.plan({}).method_for("high") == "salun"
