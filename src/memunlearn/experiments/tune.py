"""Tuned comparisons: each compared (method, strategy) arm searched with Optuna before the claims compare them
(the ``tune`` stage; docs/results.md, "Tuned rows").

A method compared at its defaults proves little, so every arm of the ``tuned`` grid (grid.py) gets its own
search: an Optuna study in one SQLite storage (``data/tune/study.db``, a persistent DVC output), whose trials
each unlearn with sampled hyperparameters on the *tuning* seeds (each seed: its own forget set, chosen outside
the held-out forget sets, its retrain oracle and unlearning seed; the seeds disjoint from the grid's held-out
ones) and score the mean ToW against the oracles.

- What is searched (``arm_space``): ``vanilla``: the method's block; ``rum_f`` and ``shuffle``: per step
  (``subset_params`` low/mid/high, each with the method's space); ``rum``: per step, each subset's own method's
  space (the paper's low: none, mid: finetune, high: salun); ``vanilla_budget``: the method's block less
  ``epochs``, with the budget (epochs summed over RUM's steps) of the same method's tuned ``rum_f``.
- A study is named by everything it searches (``study_name``: the arm, its space, its budget, and the run keys of
  its untuned runs, which cover the original's weights, each tuning forget set and retain set by content, the
  recipe, the seeds and the unlearning code, plus the oracle recipe and this code): a rerun
  with more trials computes only the new ones, and any change of what is searched starts a new study.
- Trial 0 of every study is the arm's untuned values (params' ``methods`` blocks), each clipped into its range,
  so the tuned best is never worse than them on the tuning seeds. The sampler (TPE, seeded by ``tune.seed`` and
  the number of finished trials, so a resumed study draws new points) ranks trials by ToW alone; the cost is
  bounded by the ranges (the default run's epochs ranges stop below the methods' default epochs).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..config import ConfigError, from_params
from ..evaluation.tow import tow
from ..grid import TUNED, GridConfig
from .grids import tuned_plan
from ..partition import SUBSETS, PartitionConfig, apply_partition, choose_forget_set
from ..provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ..seeding import derive_seed
from ..training.loop import accuracy, predict_proba
from ..training.recipe import recipe_for, recipe_identity, resolved
from ..unlearning import METHODS, STRATEGIES
from ..unlearning.cache import cached_strategy, run_key
from ..unlearning.config import REFERENCE_SUBSET_METHODS

log = logging.getLogger("memunlearn")
PER_STEP = ("rum_f", "shuffle", "rum")  # strategies searched per RUM step (subset_params); shuffle: step k
BUDGET_FROM = {"vanilla_budget": "rum_f"}  # an arm whose epochs budget is another arm's tuned steps
SEP = "."  # an Optuna parameter name: "<key>" (the method's block) or "<subset>.<key>" (subset_params)


@dataclass(frozen=True)
class Range:
    """One hyperparameter's search range: integers if both bounds are, else floats; ``log``: log-uniform."""

    low: int | float
    high: int | float
    log: bool = False

    def check(self, where: str) -> None:
        if not self.low < self.high:
            raise ConfigError(f"{where}: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0 (got {self.low}); set log: false or raise low")

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def clip(self, value: float) -> float:
        """``value`` moved into the range (trial 0's untuned value where the range excludes it)."""
        clipped = min(max(value, self.low), self.high)
        return int(round(clipped)) if self.integer else clipped


@dataclass(frozen=True)
class TuneConfig:
    """Params section ``tune``."""

    trials: int = 3  # finished trials per arm (trial 0: the untuned values); a rerun computes only the new ones
    seeds: tuple[int, ...] = (100,)  # tuning seeds: forget set, oracle and unlearning; not the tuned grid's seeds
    spaces: Mapping[str, Mapping[str, Range]] = field(default_factory=dict)  # methods.<name> -> key -> range
    seed: int = 0  # the sampler's
    device: str = "auto"

    def validate(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"tune.trials: got {self.trials}; at least 1 (trial 0 is the untuned values)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"tune.seeds: got {list(self.seeds)}; list one or more distinct tuning seeds")
        for name, space in self.spaces.items():
            for key, bounds in space.items():
                bounds.check(f"tune.spaces.{name}.{key}")

    def check(self, blocks: Mapping[str, Mapping[str, Any]], held_out: Iterable[int]) -> None:
        """Every space key is a hyperparameter of its method; the tuning seeds are not the held-out ones."""
        for name, space in self.spaces.items():
            known = _hyperparameters(name, blocks)
            for key in space:
                if key not in known:
                    raise ConfigError(f"tune.spaces.{name}.{key}: not a hyperparameter of {name}; "
                                      f"choose from {', '.join(sorted(known))}")
        if shared := sorted(set(self.seeds) & set(held_out)):
            raise ConfigError(f"tune.seeds: {shared} are also {TUNED}.seeds (the held-out seeds the claims "
                              "test on); pick tuning seeds outside them, e.g. [100]")


def _registered(name: str, blocks: Mapping[str, Mapping[str, Any]]) -> str:
    block = blocks.get(name)
    registered = block.get("method", name) if isinstance(block, Mapping) else name
    if registered not in METHODS:
        raise ConfigError(f"tune.spaces.{name}: no registered method or methods.{name} block of that name; "
                          f"choose from {', '.join(METHODS.names())}")
    return registered


def _hyperparameters(name: str, blocks: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The numeric fields of ``name``'s method config (what a range can search)."""
    config_cls = METHODS.get(_registered(name, blocks)).config_cls
    return {f.name for f in fields(config_cls) if f.type in ("int", "float", int, float)}


@dataclass(frozen=True)
class ArmSpace:
    """An arm's search: ``ranges`` by Optuna name (``<key>`` or ``<subset>.<key>``), trial 0's values (the untuned
    ones clipped into the ranges), and the fixed ``subset_params`` (vanilla_budget's epochs budget)."""

    ranges: Mapping[str, Range]
    defaults: Mapping[str, Any]
    fixed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Sampled values as ``{"block": {key: v}, "subset_params": {subset: {key: v}}}`` (fixed ones merged)."""
        block, per_step = {}, {s: dict(v) for s, v in self.fixed.items()}
        for name, value in sampled.items():
            subset, _, key = name.rpartition(SEP)
            (per_step.setdefault(subset, {}) if subset else block)[key] = value
        return {"block": block, "subset_params": per_step}


def arm_space(method: str, strategy: str, spaces: Mapping[str, Mapping[str, Range]],
              blocks: Mapping[str, Mapping[str, Any]], budget: Mapping[str, Mapping[str, Any]] | None = None
              ) -> ArmSpace:
    """The search of arm (``method``, ``strategy``); ``budget``: vanilla_budget's per-step epochs (its tuned
    rum_f's ``subset_params``)."""
    def block_defaults(name: str) -> dict[str, Any]:
        config_cls = METHODS.get(_registered(name, blocks)).config_cls
        given = {k: v for k, v in (blocks.get(name) or {}).items() if k != "method"}
        return {f.name: given.get(f.name, f.default) for f in fields(config_cls)}

    ranges, defaults = {}, {}
    if strategy in PER_STEP:
        per_subset = STRATEGIES.get(strategy).per_subset_methods
        for subset in SUBSETS:
            name = REFERENCE_SUBSET_METHODS[subset] if per_subset else method
            base = block_defaults(name)
            for key, bounds in (spaces.get(name) or {}).items():
                ranges[f"{subset}{SEP}{key}"], defaults[f"{subset}{SEP}{key}"] = bounds, bounds.clip(base[key])
        return ArmSpace(ranges, defaults)
    base = block_defaults(method)
    fixed = {}
    for key, bounds in (spaces.get(method) or {}).items():
        if strategy in BUDGET_FROM and key == "epochs":
            continue  # the budget: rum_f's tuned epochs per step
        ranges[key], defaults[key] = bounds, bounds.clip(base[key])
    if strategy in BUDGET_FROM and budget:
        fixed = {s: {"epochs": v["epochs"]} for s, v in budget.items() if "epochs" in v}
    return ArmSpace(ranges, defaults, fixed)


def arms_in_order(cells: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The distinct (method, strategy) arms, each budget-matched arm after the arm its budget comes from."""
    arms = list(dict.fromkeys(cells))
    return sorted(arms, key=lambda a: (a[1] in BUDGET_FROM, arms.index(a)))


def study_name(method: str, strategy: str, space: ArmSpace, identity: Mapping[str, Any]) -> str:
    """``<method>-<strategy>-<16 hex>`` over the arm, its ranges, defaults and budget and ``identity`` (what the
    trials run on: run keys, oracle recipe, code)."""
    key = {"arm": [method, strategy], "ranges": {k: vars(r) for k, r in space.ranges.items()},
           "defaults": dict(space.defaults), "fixed": dict(space.fixed), **identity}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{method}-{strategy}-{digest}"


@dataclass(frozen=True)
class ArmResult:
    """An arm's tuned values (``ArmSpace.values`` of its best trial), its best mean ToW on the tuning seeds, the
    untuned values' ToW (trial 0), and what the study cost."""

    method: str
    strategy: str
    study: str
    values: Mapping[str, Any]
    tow: float
    default_tow: float
    trials: int  # finished trials in the study
    new_trials: int  # computed by this run
    seconds: float  # this run's

    def record(self) -> dict[str, Any]:
        # no seconds or new-trial counts (metrics/tune.json has them): a rerun that computes nothing writes the same
        # bytes, so the grids stage that reads this file stays cached
        return {k: getattr(self, k) for k in ("method", "strategy", "study", "tow", "default_tow", "trials")} | dict(
            self.values)


def tune_arm(storage: str, method: str, strategy: str, space: ArmSpace, identity: Mapping[str, Any], trials: int,
             seed: int, score: Callable[[Mapping[str, Any]], float]) -> ArmResult:
    """Run the arm's study in ``storage`` (an Optuna URL, e.g. ``sqlite:///data/tune/study.db``) up to ``trials``
    finished trials: trial 0 scores ``space.defaults``, the rest TPE draws; ``score(values)`` (``ArmSpace.values``
    form) returns the mean ToW to maximize. Only trials the study lacks are computed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(method, strategy, space, identity)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    study.sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, name, len(done)) % 2**32)  # new points on resume
    if not done:
        study.enqueue_trial(dict(space.defaults), skip_if_exists=True)

    def objective(trial) -> float:
        sampled = {}
        for key, bounds in space.ranges.items():
            suggest = trial.suggest_int if bounds.integer else trial.suggest_float
            sampled[key] = suggest(key, bounds.low, bounds.high, log=bounds.log)
        return score(space.values(sampled))

    start, missing = time.perf_counter(), max(0, trials - len(done))
    if missing:
        study.optimize(objective, n_trials=missing)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(done, key=lambda t: (t.value, -t.number))  # ties: the earliest (the defaults first)
    log.info("tune: %s/%s best ToW %.4f (defaults %.4f) after %d trials, %d new", method, strategy, best.value,
             done[0].value, len(done), missing)
    return ArmResult(method, strategy, name, space.values(best.params), float(best.value), float(done[0].value),
                     len(done), missing, time.perf_counter() - start)



def accuracies(model, data, parts, device) -> dict[str, float]:
    """FA/RA/TA, all ToW reads (images; the grids score the MIA too, a trial needs none: an SVC fit per trial
    would cost more than the unlearning)."""
    return {f"{name}_acc": accuracy(predict_proba(model, split, data.info, device), split.labels)
            for name, split in (("forget", parts.forget), ("retain", parts.retain), ("test", data.test))}


def without_scores(sources, ids: set) -> Any:
    """``sources`` (partition.ScoreSources) with every exact and proxy score of ``ids`` missing, so no forget set
    chosen by those scores holds them (a score's groups are its extremes: another seed alone would pick nearly
    the same examples). The embedding scores (entanglement, centroid distance) cannot leave examples out: their
    overlap is reported."""
    def blank(table):
        table = table.copy()
        rows = table["example_id"].isin(ids)
        table.loc[rows, [c for c in table.columns if c != "example_id" and table[c].dtype.kind == "f"]] = float("nan")
        return table

    return dataclasses.replace(sources, exact=blank(sources.exact), proxies=blank(sources.proxies))


def run_tune(config: TuneConfig, grid: GridConfig, params: Mapping[str, Any], modality, data, sources, device,
             train_dir: Path, oracle_cache: Path | None, storage: str) -> tuple[list[ArmResult], float]:
    """Tune every (method, strategy) arm of ``grid`` (the tuned grid) on ``config.seeds``: per seed the grid's
    first (score, kind) forget set with that seed, chosen among the examples outside every held-out forget set
    (the grid's seeds; ``without_scores``), its retrain oracle (through the oracle cache) and the seed's original;
    each trial unlearns at every seed (no unlearning cache: the study is the trials' cache) and scores the mean ToW
    against the oracles. Returns the arms' results and the mean share of a tuning forget set that lies in a
    held-out one (0 for exact and proxy scores)."""
    blocks = params["methods"]
    recipe, oracle_recipe = recipe_for(params, "original"), recipe_for(params, "oracle")
    config.check(blocks, grid.seeds)
    arms = arms_in_order((c["method"], c["strategy"]) for c in grid.cells(TUNED).to_dict("records"))
    plans = {m: tuned_plan(m, "vanilla", {"block": {}, "subset_params": {}}, blocks, 0, grid.device)
             for m in dict.fromkeys(m for m, _ in arms)}
    original_of = modality.grid_originals(data, recipe, plans, train_dir, oracle_cache, device)
    def forget_set(seed: int, among):
        return choose_forget_set(from_params(PartitionConfig, grid.partition_params(
            grid.group_scores[0], grid.kinds[0], seed, TUNED), f"{TUNED}.partition"), among)

    held_out = {i for seed in grid.seeds for i in forget_set(seed, sources)["example_id"]}
    outside = without_scores(sources, held_out)
    tuning, overlap = [], []  # per seed: (seed, original, its context, F/R parts, the oracle's accuracies)
    for seed in config.seeds:
        forget = forget_set(seed, outside)
        overlap.append(float(forget["example_id"].isin(held_out).mean()))
        parts = apply_partition(data.train, forget)
        oracle, oracle_seconds, _ = modality.cached_oracle(parts.retain, data.info, oracle_recipe, device, seed,
                                                          oracle_cache)
        original = original_of(seed)
        ctx = dataclasses.replace(original.context, seed=seed).with_oracle_recipe(oracle_recipe)
        tuning.append((seed, original, ctx, parts, accuracies(oracle, data, parts, device)))
        log.info("tune: tuning forget set of seed %d (%.0f%% of it in a held-out forget set), oracle %.1f s", seed,
                 100 * overlap[-1], oracle_seconds)
    code = source_fingerprint(imported_files(Path(__file__)))
    scoring = {"oracle_recipe": recipe_identity(resolved(oracle_recipe, device)), "code": code}

    results: dict[tuple[str, str], ArmResult] = {}
    for method, strategy in arms:
        source = (method, BUDGET_FROM.get(strategy))
        budget = results[source].values["subset_params"] if source in results else None
        space = arm_space(method, strategy, config.spaces, blocks, budget)

        def plan_at(values, seed, method=method, strategy=strategy):
            return tuned_plan(method, strategy, values, blocks, seed, config.device)

        untuned = space.values(space.defaults)
        identity = {"runs": [run_key(strategy, original.model, parts.subsets, parts.retain, plan_at(untuned, seed),
                                     ctx) for seed, original, ctx, parts, _ in tuning], **scoring}

        def score(values, plan_at=plan_at, strategy=strategy) -> float:
            tows = []
            for seed, original, ctx, parts, oracle in tuning:
                model, _, _, _ = cached_strategy(strategy, copy.deepcopy(original.model), parts.subsets,
                                                 parts.retain, plan_at(values, seed), ctx, None)
                tows.append(tow(accuracies(model, data, parts, device), oracle))
            return float(sum(tows) / len(tows))

        results[(method, strategy)] = tune_arm(storage, method, strategy, space, identity, config.trials,
                                               config.seed, score)
    return list(results.values()), sum(overlap) / len(overlap)
