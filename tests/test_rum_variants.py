"""RUM strategies (docs/methods.md §4): step order, retain sets, the shuffle control, per-step hyperparameters."""
import copy
import dataclasses
import re
from dataclasses import dataclass

import pytest
import torch

from memunlearn.config import ConfigError, from_params
from memunlearn.models import build_model
from memunlearn.partition import SUBSETS
from memunlearn.unlearning import METHODS, Method, UnlearnContext, UnlearnPlan, run_strategy
from memunlearn.unlearning.neggrad_plus import NegGradPlusConfig
from memunlearn.unlearning import UnlearnConfig

CPU = torch.device("cpu")
REFERENCE_PROXY_RUN = {  # docs/methods.md §4: NegGrad+ at every step
    "low": {"alpha": 0.99, "epochs": 5, "lr": 0.01},
    "mid": {"alpha": 0.97, "epochs": 5, "lr": 0.01},
    "high": {"alpha": 0.97, "epochs": 10, "lr": 0.001},
}


@dataclass(frozen=True)
class SpyConfig:
    lr: float = 0.1
    epochs: int = 1
    alpha: float = 0.5


@dataclass
class Call:
    method: str
    forget: set
    retain: set
    config: object
    seed: int


# rum and rum_reference_retain default to the RUM paper's methods per subset; the spy everywhere instead
SPY_EVERYWHERE = UnlearnPlan("spy", subset_methods={s: "spy" for s in SUBSETS})


def ids(split) -> set:
    return set(split.example_ids.tolist())


@pytest.fixture
def calls(monkeypatch):
    """Register spy methods (``spy`` and ``spy2``) that record what they were given and change nothing."""
    recorded = []

    def spy(name):
        def run(model, forget, retain, cfg, ctx):
            recorded.append(Call(name, ids(forget), ids(retain), cfg, ctx.seed))
            return model
        return Method(name, SpyConfig, run, "")

    for name in ("spy", "spy2"):
        monkeypatch.setitem(METHODS._entries, name, spy(name))
    return recorded


@pytest.fixture
def data(synthetic):
    """F = the flipped examples cut into thirds (standing in for the memorization refinement); R = the rest."""
    train, _, info, flipped = synthetic
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    subsets = {name: forget.take(part) for name, part in zip(SUBSETS, torch.arange(len(forget)).chunk(3))}
    return forget, retain, subsets, info


def run(strategy, data, tiny_recipe, plan, seed=0):
    forget, retain, subsets, info = data
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    return run_strategy(strategy, model, subsets, retain, plan, UnlearnContext(info, tiny_recipe, CPU, seed))[1]


@pytest.mark.parametrize("strategy", ["rum_f", "rum", "rum_reference_retain"])
def test_refined_strategies_run_low_mid_high_in_order(strategy, data, tiny_recipe, calls):
    forget, retain, subsets, _ = data
    records = run(strategy, data, tiny_recipe, SPY_EVERYWHERE)
    assert [r.subset for r in records] == ["low", "mid", "high"]
    assert [c.forget for c in calls] == [ids(subsets[s]) for s in SUBSETS]
    assert [r.n_forget for r in records] == [len(subsets[s]) for s in SUBSETS]
    assert len({c.seed for c in calls}) == 3  # every step draws from its own derived seed


@pytest.mark.parametrize("strategy", ["vanilla", "shuffle", "rum_f", "rum"])
def test_retain_is_d_minus_f_at_every_step(strategy, data, tiny_recipe, calls):
    forget, retain, _, _ = data
    run(strategy, data, tiny_recipe, SPY_EVERYWHERE)
    assert calls and all(c.retain == ids(retain) for c in calls)
    assert all(not (c.retain & ids(forget)) for c in calls)


def test_reference_retain_variant_keeps_later_subsets_in_the_retain_set(data, tiny_recipe, calls):
    """Reference code: retain at step s = D minus (F_1 ∪ … ∪ F_s) = R ∪ F_{s+1} ∪ … (docs/methods.md §4, item 3)."""
    forget, retain, subsets, _ = data
    run("rum_reference_retain", data, tiny_recipe, SPY_EVERYWHERE)
    low, mid, high = (ids(subsets[s]) for s in SUBSETS)
    assert [c.retain for c in calls] == [ids(retain) | mid | high, ids(retain) | high, ids(retain)]
    assert [len(c.retain) for c in calls] == sorted((len(c.retain) for c in calls), reverse=True)
    assert len(calls[0].retain) > len(retain)  # larger than D \ F: it trains on examples forgotten later
    for step, c in enumerate(calls):  # never trains on what is forgotten now or was forgotten before
        assert not (c.retain & set().union(*(ids(subsets[s]) for s in SUBSETS[: step + 1])))


def test_shuffle_is_a_seeded_random_equal_split_of_f(data, tiny_recipe, calls):
    forget, retain, subsets, _ = data
    records = run("shuffle", data, tiny_recipe, UnlearnPlan("spy"), seed=0)
    parts = [c.forget for c in calls]
    assert [r.subset for r in records] == ["random_1", "random_2", "random_3"]
    assert set().union(*parts) == ids(forget) and sum(map(len, parts)) == len(forget)  # a partition of F
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # equal sizes
    refined = [ids(subsets[s]) for s in SUBSETS]
    assert all(sum(bool(part & r) for r in refined) >= 2 for part in parts)  # mixes refined subsets: not that split

    calls.clear()
    run("shuffle", data, tiny_recipe, UnlearnPlan("spy"), seed=0)
    assert [c.forget for c in calls] == parts  # same seed, same split
    calls.clear()
    run("shuffle", data, tiny_recipe, UnlearnPlan("spy"), seed=1)
    assert [c.forget for c in calls] != parts  # the split follows the seed


def test_rum_f_passes_per_step_hyperparameters(data, tiny_recipe, calls):
    plan = UnlearnPlan("spy", method_params={"spy": {"epochs": 2}},
                       subset_methods={"low": "spy2"},  # rum_f ignores it: the same method at every step
                       subset_params={"low": {"lr": 0.01}, "high": {"lr": 0.001, "epochs": 10}})
    records = run("rum_f", data, tiny_recipe, plan)
    assert [r.method for r in records] == ["spy", "spy", "spy"]
    assert [c.config for c in calls] == [SpyConfig(lr=0.01, epochs=2), SpyConfig(lr=0.1, epochs=2),
                                         SpyConfig(lr=0.001, epochs=10)]


def test_rum_applies_subset_params_to_the_subsets_method(data, tiny_recipe, calls):
    plan = UnlearnPlan("spy", method_params={"spy2": {"alpha": 0.9}}, subset_methods={"high": "spy2"},
                       subset_params={"high": {"lr": 0.001}})
    records = run("rum", data, tiny_recipe, plan)
    assert [(r.subset, r.method) for r in records] == [("low", "spy"), ("mid", "spy"), ("high", "spy2")]
    assert calls[2].config == SpyConfig(lr=0.001, alpha=0.9)


def test_shuffle_steps_take_the_per_step_hyperparameters_by_position(data, tiny_recipe, calls):
    plan = UnlearnPlan("spy", subset_params={"low": {"lr": 0.01}, "high": {"lr": 0.001}})
    run("shuffle", data, tiny_recipe, plan)
    assert [c.config.lr for c in calls] == [0.01, 0.1, 0.001]


def test_vanilla_ignores_subset_params(data, tiny_recipe, calls):
    plan = UnlearnPlan("spy", method_params={"spy": {"lr": 0.2}}, subset_params={"low": {"lr": 0.01}})
    records = run("vanilla", data, tiny_recipe, plan)
    assert [r.subset for r in records] == ["all"] and calls[0].config == SpyConfig(lr=0.2)


def test_reference_proxy_run_builds_neggrad_plus_per_step():
    config = from_params(UnlearnConfig, {"method": "neggrad_plus", "strategy": "rum_f",
                                         "subset_params": REFERENCE_PROXY_RUN}, "unlearn")
    plan = config.plan({"neggrad_plus": {"alpha": 0.99, "lr": 0.01, "epochs": 5, "batch_size": 32}})
    steps = {s: plan.step_config("neggrad_plus", s) for s in SUBSETS}
    assert steps["low"] == NegGradPlusConfig(alpha=0.99, lr=0.01, epochs=5, batch_size=32)
    assert steps["mid"] == NegGradPlusConfig(alpha=0.97, lr=0.01, epochs=5, batch_size=32)
    assert steps["high"] == NegGradPlusConfig(alpha=0.97, lr=0.001, epochs=10, batch_size=32)


@pytest.mark.parametrize("unlearn, message", [
    ({"subset_params": {"hgh": {"lr": 0.1}}},
     r"unlearn.subset_params has unknown subset\(s\) \['hgh'\]; valid: \['low', 'mid', 'high'\]"),
    ({"subset_params": {"high": 0.1}}, r"unlearn.subset_params.high: got 0.1; write a mapping"),
    ({"subset_params": [{"lr": 0.1}]}, r"unlearn.subset_params: got \[\{\"lr\": 0.1\}\]; write a mapping"),
    ({"strategy": "rum_f", "subset_params": {"high": {"lrr": 0.1}}},
     r"unlearn.subset_params.high.lrr: unknown key; valid keys: .*\(merged over methods.neggrad_plus\)"),
    ({"strategy": "rum_f", "subset_params": {"mid": {"alpha": 2.0}}},
     r"alpha must lie in \[0, 1\].* \(unlearn.subset_params.mid merged over methods.neggrad_plus\)"),
    ({"subset_params": {"high": {"alpha": 0.5}}},  # rum's default high method is the paper's salun
     r"unlearn.subset_params.high.alpha: unknown key; .* \(merged over methods.salun\)"),
    ({"strategy": "rum", "subset_methods": {"low": "none"}, "subset_params": {"low": {"lr": 0.1}}},
     r"unlearn.subset_params.low.lr: unknown key; this section takes none \(merged over methods.none\)"),
    ({"strategy": "rum_g"}, r"^unlearn.strategy: unknown RUM strategy 'rum_g'; choose one of: rum, rum_f, rum_ref"),
])
def test_bad_rum_params_fail_before_any_work_in_one_line(unlearn, message):
    with pytest.raises((ConfigError, KeyError)) as err:
        from_params(UnlearnConfig, {"method": "neggrad_plus", **unlearn}, "unlearn")
    assert "\n" not in str(err.value)
    assert re.search(message, str(err.value)), str(err.value)


def test_subset_params_are_checked_against_the_method_that_runs_there():
    """rum_f runs the plan's method everywhere, so a none-method subset may still get NegGrad+ hyperparameters."""
    unlearn = {"method": "neggrad_plus", "subset_methods": {"low": "none"}, "subset_params": {"low": {"lr": 0.1}}}
    config = from_params(UnlearnConfig, {**unlearn, "strategy": "rum_f"}, "unlearn")
    assert config.plan({}).step_config("neggrad_plus", "low") == NegGradPlusConfig(lr=0.1)
    with pytest.raises(ConfigError, match=r"merged over methods.none"):  # rum runs `none` on low
        from_params(UnlearnConfig, {**unlearn, "strategy": "rum"}, "unlearn")


def test_a_named_methods_block_configures_the_method_it_names():
    """``methods.<name>`` with ``method:`` is a hyperparameter variant (a grid's ablation axis, e.g. DEL's basis)."""
    from memunlearn.unlearning.finetune import FinetuneConfig

    blocks = {"finetune_short": {"method": "finetune", "epochs": 1}, "finetune": {"epochs": 4}}
    config = from_params(UnlearnConfig, {"method": "finetune_short", "strategy": "vanilla"}, "unlearn")
    plan = config.plan(blocks)
    assert plan.registered("finetune_short") == "finetune" and plan.registered("finetune") == "finetune"
    assert plan.step_config("finetune_short", None) == FinetuneConfig(epochs=1)  # its own block, not finetune's
    with pytest.raises(ConfigError, match=r"^methods.finetune_short.alpha: unknown key; valid keys: batch_size, "):
        config.plan({"finetune_short": {"method": "finetune", "alpha": 0.5}})
    with pytest.raises(KeyError, match="unknown unlearning method 'finetune_short'; choose one of: .*or a "
                                       "methods.<name> block with a method: key"):
        config.plan({})


def test_every_methods_block_in_params_yaml_builds_its_config():
    from pathlib import Path

    import yaml

    blocks = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["methods"]
    plan = UnlearnPlan("none", blocks)
    for name in blocks:
        plan.step_config(name, None)
    assert plan.registered("first_epoch_ga_input") == "first_epoch_ga"
    assert plan.step_config("first_epoch_ga_input", None).layers == ("input",)


def test_cached_strategy_runs_once_per_identical_run_and_keys_what_changes_it(data, tiny_recipe, tmp_path):
    """The unlearn stage, a grid cell and LiRA's unlearned copies share identical runs: the second loads the
    first's model, steps and seconds; another seed, plan block, forget set or original is another run."""
    from memunlearn.unlearning.cache import cached_strategy, run_key

    forget, retain, subsets, info = data
    original = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    ctx = UnlearnContext(info, tiny_recipe, CPU, 0)
    methods = {"neggrad_plus": {"epochs": 1}, "finetune": {"epochs": 1}}
    plan = UnlearnConfig(method="neggrad_plus", strategy="rum_f").plan(methods)

    def cached(strategy="rum_f", plan=plan, ctx=ctx, subsets=subsets, model=original):
        return cached_strategy(strategy, copy.deepcopy(model), subsets, retain, plan, ctx, tmp_path)

    first, steps, seconds, hit = cached()
    again, steps_again, seconds_again, hit_again = cached()
    assert (hit, hit_again) == (False, True) and seconds_again == seconds > 0 and steps_again == steps
    fresh, fresh_steps = run_strategy("rum_f", copy.deepcopy(original), subsets, retain, plan, ctx)
    assert [s.subset for s in fresh_steps] == [s.subset for s in steps]
    for model in (first, again):  # the cached model is the model unlearning gives, bit for bit
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))

    # a block the strategy never reads does not change the run (the unlearn stage passes every block)
    unused = UnlearnConfig(method="neggrad_plus", strategy="rum_f").plan({**methods, "salun": {"lr": 0.5}})
    assert run_key("rum_f", original, subsets, retain, unused, ctx) == run_key("rum_f", original, subsets, retain,
                                                                               plan, ctx)
    # an oracle recipe of its own keys the runs that can retrain (the retrain method) and no other
    oracle_ctx = ctx.with_oracle_recipe(dataclasses.replace(tiny_recipe, epochs=1))
    assert run_key("rum_f", original, subsets, retain, plan, oracle_ctx) == run_key("rum_f", original, subsets,
                                                                                    retain, plan, ctx)
    retrain = UnlearnConfig(method="retrain", strategy="vanilla").plan({"retrain": {}})
    assert run_key("vanilla", original, subsets, retain, retrain, oracle_ctx) != run_key("vanilla", original,
                                                                                         subsets, retain, retrain, ctx)
    other_plan = UnlearnConfig(method="neggrad_plus", strategy="rum_f").plan({"neggrad_plus": {"epochs": 2}})
    other_original = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=1)
    fewer = {name: split.take(torch.arange(len(split) - 1)) for name, split in subsets.items()}
    for kwargs in ({"ctx": UnlearnContext(info, tiny_recipe, CPU, 1)}, {"plan": other_plan}, {"strategy": "shuffle"},
                   {"subsets": fewer}, {"model": other_original}):
        assert not cached(**kwargs)[3], kwargs
    assert len(list(tmp_path.iterdir())) == 6


def test_a_method_that_builds_a_new_model_still_unlearns_the_given_one(data, tiny_recipe, tmp_path):
    """`retrain` returns a fresh model; the caller's model (the one a cell saves) must hold its weights."""
    from memunlearn.unlearning.cache import cached_strategy

    forget, retain, subsets, info = data
    ctx = UnlearnContext(info, dataclasses.replace(tiny_recipe, epochs=1), CPU, 0)
    plan = UnlearnConfig(method="retrain", strategy="vanilla").plan({})
    for cache in (None, tmp_path):
        given = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=5)
        before = copy.deepcopy(given.state_dict())
        returned = cached_strategy("vanilla", given, subsets, retain, plan, ctx, cache)[0]
        assert returned is given
        assert not all(torch.equal(a, b) for a, b in zip(before.values(), given.state_dict().values()))
