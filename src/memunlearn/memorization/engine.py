"""The subset-model engine: jobs of one or more subset models, and where they run.

A ``SubsetJob`` is self-contained and picklable (data, recipe, indices), so
the same job runs in this process, in a local worker process, or on a Dask
worker through a Prefect task runner (memorization/runners.py); a ``Runner`` maps
jobs to results as they finish. Model k of K is the same model whatever the
runner, the job it lands in, or K: its subset, init and data order derive
from (seed, k) alone.

How a job trains its models, chosen per device (benchmarks/memorization.py
has the figures): on a CPU one model at a time in channels-last layout
(pooling and batch norm, most of a small CNN's time, vectorize over
channels); on a GPU ``stack`` models per kernel (training/stacked.py) to
keep the device busy. On a 2-core CPU stacking measured no faster than a
loop: the small CNN is bound by memory traffic, not by kernel launches.
D and T are normalized once per job as one tensor (training batches are row
gathers of it) and scored in one eval pass per model or stack, and forward
passes run in ``recipe.precision`` (bf16 autocast where asked).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit
from ..models import build_model
from ..seeding import derive_seed, generator
from ..training.loop import fit, normalized_inputs, predict_proba, true_class_prob
from ..training.recipe import TrainConfig, resolve_precision
from ..training.stacked import fit_stacked, predict_proba_stacked, stack_models


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


@dataclass(frozen=True)
class SubsetJob:
    """Train subset models ``indices`` together (one stack when more than one) and score them."""

    indices: tuple[int, ...]
    train: ImageSplit
    test: ImageSplit
    info: DatasetInfo
    recipe: TrainConfig
    fraction: float  # p
    seed: int  # the base seed; model k's seeds derive from (seed, k)
    device: str
    threads: int = 0  # torch threads while the job runs; 0 = leave as is


JobDone = Callable[[list[SubsetModelOutputs]], None]  # called with each job's outputs as soon as it finishes
Runner = Callable[[Sequence[SubsetJob], JobDone], None]  # runs every job, calling JobDone in this process


def run_subset_job(job: SubsetJob) -> list[SubsetModelOutputs]:
    with _torch_threads(job.threads):
        start = time.perf_counter()
        masks = [subset_mask(len(job.train), job.fraction, job.seed, k) for k in job.indices]
        models = [_prepare(build_model(job.recipe.model, job.info.in_channels, job.info.num_classes,
                                       job.info.image_size, seed=derive_seed(job.seed, "subset_model_init", k)), job)
                  for k in job.indices]
        orders = [generator(job.seed, "subset_model_order", k) for k in job.indices]
        device = torch.device(job.device)
        precision = resolve_precision(job.recipe.precision, device)
        # D and T as one split, normalized once on the device: training batches are row gathers of its first
        # N rows, and one eval pass per model (or stack) scores D and T together (the same values as a pass each)
        both = job.train.concat(job.test)
        inputs = normalized_inputs(both, job.info, device, job.recipe.channels_last and len(models) == 1)
        train_inputs = inputs[:len(job.train)]  # (N, C, H, W) view
        if len(models) == 1:
            fit(models[0], job.train.take(masks[0]), job.info, job.recipe, orders[0], device,
                inputs=train_inputs[masks[0].to(device)])
            probs = predict_proba(models[0], both, job.info, device, precision=precision,
                                  inputs=inputs).unsqueeze(0)  # (1, N+M, C)
        else:
            stacked = _prepare(stack_models(models), job)
            fit_stacked(stacked, job.train, [m.nonzero().squeeze(1) for m in masks], job.info, job.recipe, orders,
                        device, inputs=train_inputs)
            probs = predict_proba_stacked(stacked, both, job.info, device, len(models), precision=precision,
                                          inputs=inputs)  # (M, N+M', C)
        seconds = (time.perf_counter() - start) / len(models)
        n = len(job.train)
        return [_outputs(k, mask, probs[m, :n], probs[m, n:], job, seconds)
                for m, (k, mask) in enumerate(zip(job.indices, masks))]


def _prepare(model: nn.Module, job: SubsetJob) -> nn.Module:
    return model.to(memory_format=job.recipe.memory_format)


def _outputs(k: int, mask: torch.Tensor, train_probs: torch.Tensor, test_probs: torch.Tensor, job: SubsetJob,
             seconds: float) -> SubsetModelOutputs:
    out = {}
    for name, probs, split in (("train", train_probs, job.train), ("test", test_probs, job.test)):
        out[f"{name}_true_prob"] = true_class_prob(probs, split.labels).numpy().astype(np.float32)
        out[f"{name}_correct"] = (probs.argmax(1) == split.labels).numpy()
    return SubsetModelOutputs(k, mask.numpy(), **out, seconds=seconds)


@contextlib.contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- runners -----------------------------------------------------------------

def in_process(jobs: Sequence[SubsetJob], done: JobDone) -> None:
    """One job after another in this process."""
    for job in jobs:
        done(run_subset_job(job))


def process_pool(workers: int) -> Runner:
    """Jobs side by side in ``workers`` local processes (spawned: fork + torch threads can deadlock)."""
    def run(jobs: Sequence[SubsetJob], done: JobDone) -> None:
        if workers == 1 or len(jobs) <= 1:
            return in_process(jobs, done)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(run_subset_job, job) for job in jobs]):
                done(future.result())
    return run
