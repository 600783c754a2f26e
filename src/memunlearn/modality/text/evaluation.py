"""Language-model metrics: perplexity, next-token accuracy, canary exposure, loss-based membership inference.

Exposure (Carlini et al. 2019, "The Secret Sharer", eq. 1): rank the true
secret among all 10**digits fillings of the template by the model's
log-likelihood of the filling; exposure = log2(10**digits) − log2(rank),
from 0 (no better than the worst filling) to log2(10**digits) (rank 1).
Enumerated exactly: every filling is the same prefix plus one token per
digit (data/corpus.py), so the fillings form a tree of digit strings that
``filling_log_likelihoods`` scores level by level.
Ties count against the secret (rank = 1 + #fillings at least as likely,
other than itself), so a model that ignores the digits gets exposure ~0.
"""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from ...data.corpus import encode
from ...data.text import TextSplit
from .lm import score_sequences
from ...evaluation.mia import svc_mia


def lm_metrics(model: nn.Module, data: TextSplit, pad_id: int, batch_size: int = 256) -> dict[str, float]:
    """Token-weighted: perplexity = exp(Σ NLL / Σ tokens), next-token accuracy; plus the mean sequence loss."""
    return metrics_of(score_sequences(model, data, pad_id, batch_size))


def metrics_of(s: pd.DataFrame) -> dict[str, float]:
    """``lm_metrics`` from the per-sequence table of modality/text/lm.py's ``score_sequences`` (any subset of its
    rows)."""
    tokens = max(float(s["tokens"].sum()), 1.0)
    return {"perplexity": math.exp(float(s["nll"].sum()) / tokens), "token_acc": float(s["correct"].sum()) / tokens,
            "loss": float(s["loss"].mean()) if len(s) else float("nan"), "sequences": len(s)}


@torch.no_grad()
def filling_log_likelihoods(model: nn.Module, tokenizer, template: str, digits: int,
                            batch_size: int = 2048) -> np.ndarray:
    """log p(digits | prefix) of every filling, (10**digits,) float64, filling f at index int(f).

    Down the digit tree: log p(f) = Σ_k log p(f_k | prefix, f_<k), so level k scores each of its 10**k contexts
    (the prefix and a k-digit string) once: 1 + 10 + ... + 10**(d-1) forwards of length P + k instead of 10**d
    of length P + d (about 9x fewer tokens at d = 4; the same values up to float rounding).
    """
    prefix = encode(tokenizer, template.split("{}")[0])
    digit_ids = torch.tensor([encode(tokenizer, str(d))[0] for d in range(10)])
    if encode(tokenizer, template.format("0" * digits))[:len(prefix) + digits] != prefix + [int(digit_ids[0])] * digits:
        raise ValueError(f"text.canary_template {template!r}: the tokenizer does not split it into the prefix then one "
                         "token per digit; put a space or punctuation before '{}'")
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros(1, dtype=torch.float64)  # level 0: the empty filling
    for k in range(digits):
        contexts = torch.tensor(list(itertools.product(range(10), repeat=k)), dtype=torch.long).view(10 ** k, k)
        seqs = torch.cat([torch.tensor(prefix).expand(10 ** k, -1), digit_ids[contexts]], 1)  # (10^k, P + k)
        next_digit = torch.cat([F.log_softmax(model(part.to(device))[:, -1].double(), -1)[:, digit_ids].cpu()
                                for part in seqs.split(batch_size)])  # (10^k, 10): log p(j | context)
        total = (total.view(-1, 1) + next_digit).view(-1)  # (10^(k+1),): context c, digit j at index 10c + j
    return total.numpy()


def exposure(log_likelihoods: np.ndarray, secret: str) -> float:
    """log2(#fillings) − log2(rank of the secret); ties count against it."""
    true = log_likelihoods[int(secret)]
    if not np.isfinite(true):  # a diverged model (NaN outputs) ranks nothing: no exposure to speak of
        return float("nan")
    rank = int((log_likelihoods >= true).sum())  # the secret itself included
    return math.log2(len(log_likelihoods)) - math.log2(rank)


def canary_exposures(model: nn.Module, tokenizer, canaries: pd.DataFrame, template: str, digits: int
                     ) -> pd.DataFrame:
    """One row per canary (canary, copies, secret, exposure) from a canary table (data/text_prepare.py)."""
    lls = filling_log_likelihoods(model, tokenizer, template, digits)
    table = canaries.drop_duplicates("canary")[["canary", "copies", "secret"]].reset_index(drop=True)
    table["exposure"] = [exposure(lls, s) for s in table["secret"]]
    return table


def loss_mia(model: nn.Module, retain: TextSplit, test: TextSplit, forget: TextSplit, pad_id: int,
             seed: int = 0) -> dict[str, float]:
    """Loss-based membership inference. ``auc``: ROC AUC of −loss separating retain (members) from test;
    ``mia_forget``: evaluation/mia.py's SVC on p = exp(−loss) (the geometric-mean token probability, a
    sequence's "true-class probability"), fit on retain vs test: fraction of F called non-members."""
    return mia_of(*(score_sequences(model, split, pad_id)["loss"].to_numpy() for split in (retain, test, forget)),
                  seed=seed)


def mia_of(retain: np.ndarray, test: np.ndarray, forget: np.ndarray, seed: int = 0) -> dict[str, float]:
    """``loss_mia`` from each split's per-sequence mean losses."""
    losses = {"retain": retain, "test": test, "forget": forget}

    def as_probs(loss: np.ndarray):
        p = np.exp(-loss)
        return np.stack([p, 1 - p], 1), np.zeros(len(loss), dtype=np.int64)  # class 0 = "the sequence"

    auc = roc_auc_score(np.r_[np.ones(len(losses["retain"])), np.zeros(len(losses["test"]))],
                        -np.r_[losses["retain"], losses["test"]])
    return {"auc": float(auc), "mia_forget": svc_mia(as_probs(losses["retain"]), as_probs(losses["test"]),
                                                     as_probs(losses["forget"]), "true_prob", seed)}


def exposure_columns(columns, suffix: str = "") -> list[str]:
    """The ``exposure_<c>x<suffix>`` columns (canary exposure per copy count c, ``canary_exposures`` by copies; a grid
    summary's with suffix ``_mean``), by c ascending."""
    pattern = re.compile(rf"exposure_(\d+)x{re.escape(suffix)}")
    found = [(int(m.group(1)), c) for c in columns if (m := pattern.fullmatch(c))]
    return [c for _, c in sorted(found)]
