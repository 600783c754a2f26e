"""Exact memorization by leave-subset-out retraining (docs/methods.md §1).

Feldman & Zhang (2020), eq. 1, estimated from K models each trained on a
random fraction-p subset S_k of the training set D:

    mem(i) = mean_{k: i in S_k} 1[f_k(x_i) = y_i] - mean_{k: i not in S_k} 1[f_k(x_i) = y_i]

Per model we keep the subset mask and the true-class probability and
correctness on all of D and T (store.py), so the scores can be audited,
recomputed from the stored outputs alone, and K can grow without retraining
the models already trained. The same outputs give the influence of each
training example on each test example (``top_influences``). How models are
trained and where jobs run: engine.py.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

import numpy as np
import pandas as pd
import torch

from ..config import ConfigError, check_fraction
from ..data.splits import DatasetInfo, ImageSplit
from ..training.recipe import TrainConfig
from .agreement import aligned, spearman
from .engine import Runner, SubsetJob, SubsetModelOutputs, process_pool

if TYPE_CHECKING:
    from .store import SubsetModelStore

log = logging.getLogger("memunlearn.memorization")

RUNNERS = ("local", "prefect", "dask")  # local: this library; prefect, dask: memorization/runners.py


@dataclass(frozen=True)
class ExactConfig:
    """The ``memorize`` section: what the subset models are and how they compute (any of it can change a result)."""

    num_models: int | Literal["auto"] = 16  # K (reference: 400); auto: rounds of round_models until stable
    max_models: int = 64  # auto: the cap on K
    round_models: int = 8  # auto: models added per round (K stays a multiple, so the halves stay equal)
    stable_pearson: float = 0.9  # auto: stop once the split-half Pearson r of mem_prob reaches this
    subset_fraction: float = 0.7  # p
    seed: int = 0
    threads_per_worker: int = 0  # torch threads per job; 0 = auto: this machine's cores / MEMUNLEARN_WORKERS
    stack: int = 0  # models trained per kernel (training/stacked.py); 0 = auto: 1 on CPU, 16 on GPU
    influence_top: int = 0  # keep each test example's top-n train->test influences; 0 = off
    recipe: dict[str, Any] = field(default_factory=dict)  # train keys for the subset models (recipe_for); {} = train's

    def validate(self) -> None:
        if self.threads_per_worker < 0 or self.stack < 0 or self.influence_top < 0:
            raise ValueError("memorize.threads_per_worker, stack and influence_top must be >= 0")
        if self.num_models != "auto" and self.num_models < 2:
            raise ConfigError(f"memorize.num_models must be >= 2 or auto, got {self.num_models}")
        if self.round_models < 2 or self.round_models % 2:
            raise ConfigError(f"memorize.round_models must be an even number >= 2 (two equal halves), "
                              f"got {self.round_models}")
        if self.max_models < self.round_models:
            raise ConfigError(f"memorize.max_models must be >= memorize.round_models ({self.round_models}), "
                              f"got {self.max_models}")
        if not 0 < self.stable_pearson < 1:
            raise ConfigError(f"memorize.stable_pearson must lie in (0, 1), e.g. 0.9; got {self.stable_pearson}")
        check_fraction(self.subset_fraction, "memorize.subset_fraction", open_low=True)
        if self.subset_fraction == 1:
            raise ValueError("memorize.subset_fraction must be < 1, or no example is ever held out")

    @property
    def adaptive(self) -> bool:
        return self.num_models == "auto"

    @property
    def most_models(self) -> int:
        """The largest K this config can reach: K itself, or the cap under auto."""
        return self.max_models if self.adaptive else self.num_models

    def models_per_job(self, device: torch.device) -> int:
        return self.stack or (16 if device.type == "cuda" else 1)

    def jobs(self, indices: list[int], train: ImageSplit, test: ImageSplit, info: DatasetInfo, recipe: TrainConfig,
             device: torch.device, workers: int = 1) -> list[SubsetJob]:
        """The missing models ``indices`` as jobs of ``models_per_job`` models each; ``workers`` jobs side by
        side share this machine's cores unless ``threads_per_worker`` pins the thread count."""
        size = self.models_per_job(device)
        threads = self.threads_per_worker
        if workers > 1 and not threads:
            threads = max(1, (os.cpu_count() or 1) // workers)
        return [SubsetJob(tuple(indices[i:i + size]), train, test, info, recipe, self.subset_fraction, self.seed,
                          str(device), threads)
                for i in range(0, len(indices), size)]


ENVIRONMENT = {  # Execution field -> the environment variable that sets it
    "runner": "MEMUNLEARN_RUNNER", "workers": "MEMUNLEARN_WORKERS", "dask_address": "MEMUNLEARN_DASK_ADDRESS"}


@dataclass(frozen=True)
class Execution:
    """Where the missing subset models train: environment variables (``ENVIRONMENT``), never DVC params, since
    model k is the same model on every runner (and every worker count once ``threads_per_worker`` pins the
    threads); switching them invalidates no cache and writes nothing machine-specific into dvc.lock
    (docs/architecture.md rule 7)."""

    runner: str = "local"  # local (this process / local processes) | prefect | dask
    workers: int = 1  # jobs side by side: local processes, Prefect task slots, or local Dask workers
    dask_address: str = ""  # runner dask: scheduler address, e.g. tcp://10.0.0.5:8786; "" = temporary local cluster

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Execution":
        """The settings ``environ`` holds (unset = the default); a bad value is a ConfigError, one line each."""
        problems = execution_problems(environ)
        if problems:
            raise ConfigError("\n".join(problems))
        workers = environ.get(ENVIRONMENT["workers"], "").strip()
        return cls(environ.get(ENVIRONMENT["runner"], "").strip() or cls.runner, int(workers) if workers else 1,
                   environ.get(ENVIRONMENT["dask_address"], "").strip())


def execution_problems(environ: Mapping[str, str]) -> list[str]:
    """One line per bad ``MEMUNLEARN_*`` execution variable in ``environ``, naming it and the fix."""
    runner_var, workers_var, address_var = ENVIRONMENT.values()
    runner = environ.get(runner_var, "").strip() or Execution.runner
    workers = environ.get(workers_var, "").strip()
    address = environ.get(address_var, "").strip()
    problems = []
    if runner not in RUNNERS:
        problems.append(f"{runner_var}: got {runner!r}; choose one of {', '.join(RUNNERS)} "
                        f"(export {runner_var}=prefect), or unset it for local")
    if workers and not (workers.isascii() and workers.isdigit() and int(workers) >= 1):
        problems.append(f"{workers_var}: got {workers!r}; set a whole number >= 1 (export {workers_var}=2), "
                        "or unset it for 1")
    if address and "://" not in address:
        problems.append(f"{address_var}: got {address!r}; write a scheduler address with its protocol "
                        f"(export {address_var}=tcp://10.0.0.5:8786), or unset it for a temporary local cluster")
    elif address and runner != "dask":
        problems.append(f"{address_var}: set, but {runner_var} is {runner!r}; export {runner_var}=dask to use the "
                        f"cluster, or unset {address_var}")
    return problems


def moved_to_environment(section: object) -> list[str]:
    """One line per key of a ``memorize`` params section that is an environment variable now."""
    if not isinstance(section, Mapping):
        return []
    return [f"memorize.{key}: not a param any more (it cannot change a result); delete it from params.yaml and "
            f"export {var} instead" for key, var in ENVIRONMENT.items() if key in section]


@dataclass(frozen=True)
class SubsetRuns:
    runs: list[SubsetModelOutputs]  # index order, k = 0..K-1
    trained: list[int]  # indices trained by this call
    reused: list[int]  # indices read back from the store
    split_half_pearson: float | None = None  # num_models auto: the stopping criterion's value at K
    stable: bool | None = None  # num_models auto: the criterion was met (False: stopped at max_models)


def train_subset_models(
    train: ImageSplit,
    test: ImageSplit,
    info: DatasetInfo,
    recipe: TrainConfig,
    config: ExactConfig,
    device: torch.device,
    store: SubsetModelStore | None = None,
    on_model: Callable[[SubsetModelOutputs, bool], None] | None = None,
    runner: Runner | None = None,
    workers: int = 1,
    score: str = "mem_prob",
) -> SubsetRuns:
    """The K subset models, reusing every one the store already holds.

    Missing models run as jobs through ``runner`` (default: this process,
    or ``workers`` local processes; ``Execution.workers`` either way); each
    model is saved to the store as soon as its job is done, so a crash loses
    only the jobs in flight. ``on_model(outputs, reused)`` sees every model.

    num_models auto: rounds of ``round_models`` more models until the
    split-half Pearson r of ``score`` (``split_half_pearson``) reaches
    ``stable_pearson``, or K reaches ``max_models``. Model k depends on
    (seed, k) alone, so every round, and a later larger cap, reuses them.
    """
    args = (train, test, info, recipe, config, device, store, on_model, runner, workers)
    if not config.adaptive:
        return _first_models(config.num_models, {}, *args)
    known: dict[int, SubsetModelOutputs] = {}
    trained: list[int] = []
    K = 0
    while True:
        K = min(K + config.round_models, config.max_models)
        result = _first_models(K, known, *args)
        trained += result.trained
        r = split_half_pearson(result.runs, train.example_ids.numpy(), score)
        stable = bool(r >= config.stable_pearson)
        log.info("K=%d: split-half Pearson r of %s %.3f (stop at %.3f)", K, score, r, config.stable_pearson)
        if stable or K >= config.max_models:
            break
    if not stable:
        log.warning("memorize.num_models auto: split-half Pearson r %.3f < %.3f at the cap K=%d; raise "
                    "memorize.max_models for stabler scores", r, config.stable_pearson, K)
    return SubsetRuns(result.runs, sorted(trained), sorted(set(range(K)) - set(trained)), r, stable)


def _first_models(K: int, known: dict[int, SubsetModelOutputs], train, test, info, recipe, config, device, store,
                  on_model, runner, workers) -> SubsetRuns:
    """Models 0..K-1: those in ``known`` (filled in place), then the store's, then trained."""
    runs: dict[int, SubsetModelOutputs] = known
    fresh = [k for k in range(K) if k not in runs]
    for k in fresh:
        stored = store.load(k) if store is not None else None
        if stored is not None:
            runs[k] = stored
            if on_model is not None:
                on_model(stored, True)
    missing = [k for k in fresh if k not in runs]

    def save(finished: list[SubsetModelOutputs]) -> None:
        for run in finished:
            if store is not None:
                store.save(run)  # on disk before anything else can fail
            runs[run.index] = run
            if on_model is not None:
                on_model(run, False)

    (runner or process_pool(workers))(config.jobs(missing, train, test, info, recipe, device, workers), save)
    reused = sorted(set(range(K)) - set(missing))
    return SubsetRuns([runs[k] for k in range(K)], missing, reused)


def split_half_spearman(runs: list[SubsetModelOutputs], example_ids: np.ndarray, score: str = "mem_prob") -> float:
    """Spearman rho of ``score`` from the even-indexed vs the odd-indexed models: two disjoint halves of K."""
    return spearman(*_halves(runs, example_ids, score))


def split_half_pearson(runs: list[SubsetModelOutputs], example_ids: np.ndarray, score: str = "mem_prob") -> float:
    """Pearson r of ``score`` between the even- and odd-indexed models; NaN with fewer than 3 shared examples.

    auto K's criterion: unlike Spearman it is not swamped by the ~90% of examples whose mem_prob is noise
    around 0 (ranking that noise decorrelates the halves whatever K: README "Performance").
    """
    both = aligned(*_halves(runs, example_ids, score))
    if len(both) < 3 or both["s"].std() == 0 or both["r"].std() == 0:
        return float("nan")
    return float(np.corrcoef(both["s"], both["r"])[0, 1])


def _halves(runs: list[SubsetModelOutputs], example_ids: np.ndarray, score: str) -> tuple[pd.Series, pd.Series]:
    return (memorization_scores(runs[0::2], example_ids)[score], memorization_scores(runs[1::2], example_ids)[score])


def memorization_scores(runs: list[SubsetModelOutputs], example_ids: np.ndarray) -> pd.DataFrame:
    """Feldman & Zhang eq. 1 per training example, with standard errors.

    Columns: ``mem`` (0/1 correctness, the classic estimator), ``mem_prob``
    (the same with the true-class probability: lower variance), ``mem_se``,
    ``mem_prob_se``, ``n_in``/``n_out`` and the in/out accuracies. Scores are
    NaN where an example was never in, or never out of, a subset: missing, not 0.

    ``mem_se`` is the posterior standard deviation of the difference of the
    two accuracies under Jeffreys' Beta(½, ½) prior: never 0 for a finite
    count (an example correct in all 11 of its in-models is not known to be
    correct with certainty, as a plug-in p(1-p)/n = 0 would claim).
    """
    masks = np.stack([r.mask for r in runs]).astype(np.float64)  # (K, N)
    correct = np.stack([r.train_correct for r in runs]).astype(np.float64)  # (K, N)
    prob = np.stack([r.train_true_prob for r in runs]).astype(np.float64)  # (K, N)
    acc_in, _, n_in = _masked_mean_var(correct, masks)
    acc_out, _, n_out = _masked_mean_var(correct, 1 - masks)
    prob_in, pvar_in, _ = _masked_mean_var(prob, masks)
    prob_out, pvar_out, _ = _masked_mean_var(prob, 1 - masks)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(_jeffreys_var(acc_in, n_in) + _jeffreys_var(acc_out, n_out))
        prob_se = np.sqrt(pvar_in / n_in + pvar_out / n_out)
    return pd.DataFrame({
        "example_id": example_ids,
        "mem": acc_in - acc_out,
        "mem_prob": prob_in - prob_out,
        "mem_se": se,
        "mem_prob_se": prob_se,
        "n_in": n_in.astype(np.int64),
        "n_out": n_out.astype(np.int64),
        "acc_in": acc_in,
        "acc_out": acc_out,
    })


def _masked_mean_var(values: np.ndarray, weights: np.ndarray):
    """Per-column mean and unbiased variance of ``values`` over rows where weight is 1."""
    n = weights.sum(0)  # (N,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (values * weights).sum(0) / n
        var = (((values - mean) ** 2) * weights).sum(0) / (n - 1)
    mean = np.where(n > 0, mean, np.nan)
    var = np.where(n > 1, var, np.nan)
    return mean, var, n


def _jeffreys_var(rate: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Variance of Beta(s + ½, n − s + ½), s = rate·n successes: p(1 − p)/(n + 2), p = (s + ½)/(n + 1)."""
    p = (rate * n + 0.5) / (n + 1)
    return np.where(n > 0, p * (1 - p) / (n + 2), np.nan)


def top_influences(runs: list[SubsetModelOutputs], train_ids: np.ndarray, test_ids: np.ndarray, top: int,
                   chunk: int = 256) -> pd.DataFrame:
    """Each test example's ``top`` most influential training examples (docs/methods.md §1, optional).

    infl(i, j) = mean_{k: i in S_k} 1[f_k(x_j) = y_j] - mean_{k: i not in S_k} 1[f_k(x_j) = y_j],
    Feldman & Zhang's estimator with correctness measured on test example j.
    The dense (N, M) matrix is never held: test examples go ``chunk`` at a
    time and only the top entries survive, so CIFAR-size N x M fits in memory.
    Rows: test_id, rank (1 = most influential), train_id, influence.
    """
    masks = torch.from_numpy(np.stack([r.mask for r in runs])).float()  # (K, N)
    correct = torch.from_numpy(np.stack([r.test_correct for r in runs])).float()  # (K, M)
    n_in, n_out = masks.sum(0), (1 - masks).sum(0)  # (N,)
    valid = (n_in > 0) & (n_out > 0)  # never in (or out of) a subset: no estimate, never ranked
    top = min(top, int(valid.sum()))
    rows = []
    for start in range(0, correct.shape[1], chunk):
        c = correct[:, start:start + chunk]  # (K, m)
        infl = (masks.T @ c) / n_in.clamp(min=1)[:, None] - ((1 - masks).T @ c) / n_out.clamp(min=1)[:, None]  # (N, m)
        infl[~valid] = -float("inf")
        values, positions = infl.topk(top, dim=0)  # (top, m)
        rows.append(pd.DataFrame({
            "test_id": np.repeat(test_ids[start:start + c.shape[1]], top),
            "rank": np.tile(np.arange(1, top + 1), c.shape[1]),
            "train_id": train_ids[positions.T.reshape(-1).numpy()],
            "influence": values.T.reshape(-1).numpy(),
        }))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["test_id", "rank", "train_id", "influence"])
