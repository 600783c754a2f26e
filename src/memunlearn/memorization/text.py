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

import numpy as np
import pandas as pd
import torch

from ..data.text import TextSplit
from ..models.base import build_lm
from ..seeding import derive_seed, generator
from ..training.lm import LMTrainConfig, fit_lm, score_sequences
from .engine import subset_mask


def group_masks(groups: np.ndarray, fraction: float, seed: int, index: int) -> np.ndarray:
    """Model ``index``'s sequence mask (N,) bool: the groups drawn by subset_mask over the sorted unique groups."""
    unique = np.unique(groups)
    drawn = unique[subset_mask(len(unique), fraction, seed, index).numpy()]
    return np.isin(groups, drawn)


def lm_memorization(train: TextSplit, groups: np.ndarray, recipe: LMTrainConfig, vocab_size: int, pad_id: int,
                    num_models: int, fraction: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """example_id, group, mem, mem_acc (in − out), ll_in, ll_out, n_in, n_out; plus .attrs["seconds"]."""
    if len(groups) != len(train):
        raise ValueError(f"lm_memorization: {len(groups)} groups for {len(train)} sequences; give one per sequence")
    lls, accs, masks, start = [], [], [], time.perf_counter()
    for k in range(num_models):
        mask = group_masks(groups, fraction, seed, k)
        model = build_lm(recipe.model, vocab_size, train.tokens.shape[1], derive_seed(seed, "lm_subset_init", k))
        fit_lm(model, train.take(torch.from_numpy(mask)), recipe, pad_id, generator(seed, "lm_subset_order", k))
        scores = score_sequences(model, train, pad_id)
        lls.append(-scores["loss"].to_numpy())
        accs.append(scores["token_acc"].to_numpy())
        masks.append(mask)
    m = np.stack(masks)  # (K, N)
    n_in, n_out = m.sum(0), (~m).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN where never in / never out
        (ll_in, ll_out), (acc_in, acc_out) = (((v * m).sum(0) / n_in, (v * ~m).sum(0) / n_out)
                                              for v in (np.stack(lls), np.stack(accs)))
    frame = pd.DataFrame({"example_id": train.example_ids.numpy(), "group": groups, "mem": ll_in - ll_out,
                          "mem_acc": acc_in - acc_out, "ll_in": ll_in, "ll_out": ll_out, "n_in": n_in,
                          "n_out": n_out})
    frame.attrs["seconds"] = time.perf_counter() - start
    return frame


def canary_groups(train: TextSplit, canaries: pd.DataFrame) -> np.ndarray:
    """One group per sequence, except that a canary's copies share one: −1 − canary index."""
    groups = train.example_ids.numpy().copy()
    by_id = dict(zip(canaries["example_id"], canaries["canary"]))
    for i, e in enumerate(groups.tolist()):
        if e in by_id:
            groups[i] = -1 - by_id[e]
    return groups
