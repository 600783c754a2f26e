"""Per-sequence memorization of a language model by leave-subset-out training (the text counterpart of exact.py).

K small LMs, model k trained on a seeded fraction p of the training groups
(memorization/engine.py's ``subset_mask`` and seeds derived from (seed, k),
so model k is the same whatever K). Score of sequence i (Feldman & Zhang
eq. 1, with mean token log-likelihood in place of accuracy):

    mem_i = mean_{k: i ∈ S_k} ll_k(i) − mean_{k: i ∉ S_k} ll_k(i),  ll = −mean token NLL

and ``mem_acc`` the same with next-token accuracy (eq. 1 as written, top-1
correctness per token). The accuracy form separates a memorized secret
better: on small data every chunk's log-likelihood gap is large (the model
overfits the corpus a little everywhere), while a secret's digits flip from
wrong to right only where the model memorized them.

Groups: the masks draw groups, not sequences, and a group's sequences are
in or out together. A canary inserted 16 times is one group (its copies'
ids share it): leaving one copy out while 15 stay would measure nothing.
The engine itself is image-shaped (ImageSplit, DatasetInfo, class
probabilities in SubsetModelOutputs); a generic engine would take a
(train, score) pair per modality and a group vector, as here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...data.text import TextSplit
from ...models.base import build_lm
from ...seeding import derive_seed, generator
from .lm import LMTrainConfig, fit_lm, score_sequences
from ...memorization.engine import subset_mask


def group_masks(groups: np.ndarray, fraction: float, seed: int, index: int) -> np.ndarray:
    """Model ``index``'s sequence mask (N,) bool: the groups drawn by subset_mask over the sorted unique groups."""
    unique = np.unique(groups)
    drawn = unique[subset_mask(len(unique), fraction, seed, index).numpy()]
    return np.isin(groups, drawn)


@dataclass(frozen=True)
class LMSubsetRuns:
    """K leave-group-out models' per-sequence results on D, each (K, N): mask (in S_k), ll (−mean token NLL),
    acc (next-token accuracy), prob (exp(ll): the geometric-mean next-token probability)."""

    masks: np.ndarray
    ll: np.ndarray
    acc: np.ndarray
    seconds: float

    @property
    def prob(self) -> np.ndarray:
        return np.exp(self.ll)


def train_lm_subset_models(train: TextSplit, groups: np.ndarray, recipe: LMTrainConfig, vocab_size: int,
                           pad_id: int, num_models: int, fraction: float = 0.5, seed: int = 0,
                           device: torch.device | str = "cpu", on_model=None) -> LMSubsetRuns:
    """Train the K subset models (model k: groups drawn by (seed, k)) and score every sequence of D."""
    if len(groups) != len(train):
        raise ValueError(f"lm_memorization: {len(groups)} groups for {len(train)} sequences; give one per sequence")
    lls, accs, masks, start = [], [], [], time.perf_counter()
    for k in range(num_models):
        mask = group_masks(groups, fraction, seed, k)
        model = build_lm(recipe.model, vocab_size, train.tokens.shape[1], derive_seed(seed, "lm_subset_init", k))
        fit_lm(model, train.take(torch.from_numpy(mask)), recipe, pad_id, generator(seed, "lm_subset_order", k),
               device=device)
        scores = score_sequences(model, train, pad_id)
        lls.append(-scores["loss"].to_numpy())
        accs.append(scores["token_acc"].to_numpy())
        masks.append(mask)
        if on_model is not None:
            on_model(k)
    return LMSubsetRuns(np.stack(masks), np.stack(lls), np.stack(accs), time.perf_counter() - start)


def lm_scores(runs: LMSubsetRuns, example_ids: np.ndarray, groups: np.ndarray,
              models: slice = slice(None)) -> pd.DataFrame:
    """Feldman & Zhang eq. 1 per sequence over ``models`` of the runs: example_id, group, ``mem`` (next-token
    accuracy in − out), ``mem_prob`` (geometric-mean token probability in − out), ``mem_ll`` (mean token
    log-likelihood in − out), ll_in, ll_out, n_in, n_out. NaN where a sequence was never in, or never out."""
    m = runs.masks[models]  # (K, N)
    n_in, n_out = m.sum(0), (~m).sum(0)

    def gap(v):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (v * m).sum(0) / n_in, (v * ~m).sum(0) / n_out

    (ll_in, ll_out), (acc_in, acc_out), (p_in, p_out) = (gap(v[models]) for v in (runs.ll, runs.acc, runs.prob))
    return pd.DataFrame({"example_id": example_ids, "group": groups, "mem": acc_in - acc_out,
                         "mem_prob": p_in - p_out, "mem_ll": ll_in - ll_out, "ll_in": ll_in, "ll_out": ll_out,
                         "n_in": n_in, "n_out": n_out})


def lm_memorization(train: TextSplit, groups: np.ndarray, recipe: LMTrainConfig, vocab_size: int, pad_id: int,
                    num_models: int, fraction: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """example_id, group, mem_ll as ``mem``, mem (next-token accuracy) as ``mem_acc``, ll_in, ll_out, n_in,
    n_out; plus .attrs["seconds"]. (The pipeline's column names are ``lm_scores``'.)"""
    runs = train_lm_subset_models(train, groups, recipe, vocab_size, pad_id, num_models, fraction, seed)
    scores = lm_scores(runs, train.example_ids.numpy(), groups)
    frame = scores.rename(columns={"mem": "mem_acc"}).rename(columns={"mem_ll": "mem"})
    frame = frame[["example_id", "group", "mem", "mem_acc", "ll_in", "ll_out", "n_in", "n_out"]]
    frame.attrs["seconds"] = runs.seconds
    return frame


def canary_groups(train: TextSplit, canaries: pd.DataFrame) -> np.ndarray:
    """One group per sequence, except that a canary's copies share one: −1 − canary index."""
    groups = train.example_ids.numpy().copy()
    by_id = dict(zip(canaries["example_id"], canaries["canary"]))
    for i, e in enumerate(groups.tolist()):
        if e in by_id:
            groups[i] = -1 - by_id[e]
    return groups
