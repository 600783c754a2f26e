"""Exact memorization by leave-subset-out retraining (METHODS.md §1).

Feldman & Zhang (2020), eq. 1, estimated from K models each trained on a
random fraction-p subset S_k of the training set D:

    mem(i) = mean_{k: i in S_k} 1[f_k(x_i) = y_i] - mean_{k: i not in S_k} 1[f_k(x_i) = y_i]

Per model we keep the subset mask and the true-class probability and
correctness on all of D and T (store.py), so the scores can be audited,
recomputed from the stored outputs alone, and K can grow without retraining
the models already trained.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd
import torch

from ..config import check_fraction
from ..data.splits import DatasetInfo, ImageSplit
from ..models import build_model
from ..seeding import derive_seed, generator
from ..training.loop import fit, predict_proba, true_class_prob
from ..training.recipe import TrainConfig

if TYPE_CHECKING:
    from .store import SubsetModelStore


@dataclass(frozen=True)
class ExactConfig:
    num_models: int = 16  # K (reference: 400)
    subset_fraction: float = 0.7  # p
    seed: int = 0
    workers: int = 1  # local processes training subset models side by side (CPU)
    threads_per_worker: int = 0  # torch threads in each; 0 = this machine's cores / workers

    def validate(self) -> None:
        if self.workers < 1 or self.threads_per_worker < 0:
            raise ValueError("memorize.workers must be >= 1 and memorize.threads_per_worker >= 0")
        if self.num_models < 2:
            raise ValueError(f"memorize.num_models must be >= 2, got {self.num_models}")
        check_fraction(self.subset_fraction, "memorize.subset_fraction", open_low=True)
        if self.subset_fraction == 1:
            raise ValueError("memorize.subset_fraction must be < 1, or no example is ever held out")


@dataclass(frozen=True)
class SubsetModelOutputs:
    """What one subset model contributes to the estimator."""

    index: int
    mask: np.ndarray  # (N,) bool: example in S_k
    train_true_prob: np.ndarray  # (N,) float32: f_k(x_i)_{y_i}
    train_correct: np.ndarray  # (N,) bool
    test_true_prob: np.ndarray  # (M,) float32
    test_correct: np.ndarray  # (M,) bool
    seconds: float = float("nan")  # what training and scoring this model cost: the exact method's price


def subset_mask(n: int, fraction: float, seed: int, index: int) -> torch.Tensor:
    """Model ``index``'s subset: exactly round(p*N) examples, independent of K."""
    chosen = torch.randperm(n, generator=generator(seed, "subset_mask", index))[: int(round(fraction * n))]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return mask


def train_subset_model(
    index: int,
    train: ImageSplit,
    test: ImageSplit,
    info: DatasetInfo,
    recipe: TrainConfig,
    config: ExactConfig,
    device: torch.device,
) -> SubsetModelOutputs:
    start = time.perf_counter()
    mask = subset_mask(len(train), config.subset_fraction, config.seed, index)
    model = build_model(
        recipe.model, info.in_channels, info.num_classes, info.image_size,
        seed=derive_seed(config.seed, "subset_model_init", index),
    )
    fit(model, train.take(mask), info, recipe, generator(config.seed, "subset_model_order", index), device)
    outputs = {}
    for split_name, split in (("train", train), ("test", test)):
        probs = predict_proba(model, split, info, device)  # (N, C)
        outputs[f"{split_name}_true_prob"] = true_class_prob(probs, split.labels).numpy().astype(np.float32)
        outputs[f"{split_name}_correct"] = (probs.argmax(1) == split.labels).numpy()
    return SubsetModelOutputs(index, mask.numpy(), **outputs, seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class SubsetRuns:
    runs: list[SubsetModelOutputs]  # index order, k = 0..K-1
    trained: list[int]  # indices trained by this call
    reused: list[int]  # indices read back from the store


def train_subset_models(
    train: ImageSplit,
    test: ImageSplit,
    info: DatasetInfo,
    recipe: TrainConfig,
    config: ExactConfig,
    device: torch.device,
    store: SubsetModelStore | None = None,
    on_model: Callable[[SubsetModelOutputs, bool], None] | None = None,
) -> SubsetRuns:
    """The K subset models, reusing every one the store already holds.

    Missing models train in this process or in ``config.workers`` local
    processes; each is saved to the store as soon as it is done, so a crash
    loses only models in flight. ``on_model(outputs, reused)`` sees every model.
    """
    runs: dict[int, SubsetModelOutputs] = {}
    for k in range(config.num_models):
        stored = store.load(k) if store is not None else None
        if stored is not None:
            runs[k] = stored
            if on_model is not None:
                on_model(stored, True)
    missing = [k for k in range(config.num_models) if k not in runs]
    state = (train, test, info, recipe, config, device)
    for run in _train_many(missing, state, config):
        if store is not None:
            store.save(run)  # on disk before anything else can fail
        runs[run.index] = run
        if on_model is not None:
            on_model(run, False)
    reused = sorted(set(runs) - set(missing))
    return SubsetRuns([runs[k] for k in range(config.num_models)], missing, reused)


def _train_many(indices: list[int], state: tuple, config: ExactConfig) -> Iterator[SubsetModelOutputs]:
    """Yield trained subset models as they finish: in this process, or in ``config.workers`` processes."""
    if config.workers == 1 or len(indices) <= 1:
        for k in indices:
            yield train_subset_model(k, *state)
        return
    threads = config.threads_per_worker or max(1, (os.cpu_count() or 1) // config.workers)
    context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
    with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_init_worker,
                             initargs=(state, threads)) as pool:
        for future in as_completed([pool.submit(_train_in_worker, k) for k in indices]):
            yield future.result()


_WORKER_STATE: tuple | None = None


def _init_worker(state: tuple, threads: int) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state
    torch.set_num_threads(threads)


def _train_in_worker(index: int) -> SubsetModelOutputs:
    return train_subset_model(index, *_WORKER_STATE)


def memorization_scores(runs: list[SubsetModelOutputs], example_ids: np.ndarray) -> pd.DataFrame:
    """Feldman & Zhang eq. 1 per training example, with its standard error.

    Columns: ``mem`` (0/1 correctness, the classic estimator), ``mem_prob``
    (the same with the true-class probability: lower variance), ``mem_se``,
    ``n_in``/``n_out`` and the in/out accuracies. Scores are NaN where an
    example was never in, or never out of, a subset: missing, not 0.
    """
    masks = np.stack([r.mask for r in runs]).astype(np.float64)  # (K, N)
    correct = np.stack([r.train_correct for r in runs]).astype(np.float64)  # (K, N)
    prob = np.stack([r.train_true_prob for r in runs]).astype(np.float64)  # (K, N)
    acc_in, var_in, n_in = _masked_mean_var(correct, masks)
    acc_out, var_out, n_out = _masked_mean_var(correct, 1 - masks)
    prob_in, _, _ = _masked_mean_var(prob, masks)
    prob_out, _, _ = _masked_mean_var(prob, 1 - masks)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(var_in / n_in + var_out / n_out)
    return pd.DataFrame({
        "example_id": example_ids,
        "mem": acc_in - acc_out,
        "mem_prob": prob_in - prob_out,
        "mem_se": se,
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
