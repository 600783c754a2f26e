"""Language-model training and per-sequence scoring over in-memory ``TextSplit``s.

A sequence's loss is its mean next-token CE over non-pad targets; a batch's
loss is the mean of its sequences' losses, so a short canary weighs as much
as a full chunk and g_i (training/lm_grads.py) is the gradient of one
sequence's loss. Same shape as training/loop.py: index-slice batches, a
seeded order, hooks for per-step recorders and per-epoch learning events.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_positive
from ..data.text import TextSplit
from ..models.base import LM_MODELS
from .loop import batch_positions

# on_step(model, tokens (B, T), positions (B,)) -> None, before the step's forward
LMStepHook = Callable[[nn.Module, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class LMTrainConfig:
    model: str = "gpt2_tiny"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3  # AdamW, constant
    weight_decay: float = 0.0

    def validate(self) -> None:
        LM_MODELS.get(self.model)
        for name in ("epochs", "batch_size", "lr"):
            check_positive(getattr(self, name), f"lm_train.{name}")


def sequence_nll(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence: summed next-token NLL (B,), non-pad target count (B,), correct next tokens (B,)."""
    targets = tokens[:, 1:]  # (B, T-1)
    mask = targets != pad_id
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")  # (B, T-1)
    nll = (nll * mask).sum(1)
    correct = ((logits[:, :-1].argmax(-1) == targets) & mask).sum(1)
    return nll, mask.sum(1), correct


class SequenceEventRecorder:
    """Learning events per epoch, from the training forward passes: each sequence's loss and token accuracy."""

    def __init__(self, example_ids: torch.Tensor, epochs: int):
        self.example_ids = example_ids.cpu()
        self.loss = np.full((epochs, len(example_ids)), np.nan)  # (E, N)
        self.token_acc = np.full((epochs, len(example_ids)), np.nan)

    def __call__(self, epoch: int, positions: torch.Tensor, nll: torch.Tensor, count: torch.Tensor,
                 correct: torch.Tensor) -> None:
        n = count.clamp_min(1).double()
        self.loss[epoch, positions.numpy()] = (nll.detach().double() / n).numpy()
        self.token_acc[epoch, positions.numpy()] = (correct.double() / n).numpy()

    def to_frame(self) -> pd.DataFrame:
        """Long table: example_id, epoch (1-based), loss, token_acc."""
        epochs, n = self.loss.shape
        return pd.DataFrame({"example_id": np.tile(self.example_ids.numpy(), epochs),
                             "epoch": np.repeat(np.arange(1, epochs + 1), n),
                             "loss": self.loss.ravel(), "token_acc": self.token_acc.ravel()})


def fit_lm(model: nn.Module, data: TextSplit, cfg: LMTrainConfig, pad_id: int, gen: torch.Generator, *,
           on_step: LMStepHook | None = None, events: SequenceEventRecorder | None = None) -> list[dict]:
    """Train ``model`` in place (AdamW); return per-epoch rows (epoch, train_loss, train_token_acc, seconds)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        start, loss_sum, tokens_right, tokens_all = time.perf_counter(), 0.0, 0, 0
        for positions in batch_positions(len(data), cfg.batch_size, gen):
            x = data.tokens[positions]  # (B, T)
            if on_step is not None:  # sees the parameters this step's gradient is taken at
                on_step(model, x, positions)
            nll, count, correct = sequence_nll(model(x), x, pad_id)
            loss = (nll / count.clamp_min(1)).mean()
            if events is not None:
                events(epoch, positions, nll, count, correct)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(x)
            tokens_right, tokens_all = tokens_right + int(correct.sum()), tokens_all + int(count.sum())
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / len(data),
                        "train_token_acc": tokens_right / max(tokens_all, 1),
                        "seconds": time.perf_counter() - start})
    return history


@torch.no_grad()
def score_sequences(model: nn.Module, data: TextSplit, pad_id: int, batch_size: int = 256) -> pd.DataFrame:
    """Eval mode, per sequence: example_id, nll (summed), tokens, correct, loss (mean token NLL), token_acc."""
    model.eval()
    parts = [torch.stack(sequence_nll(model(data.tokens[p]), data.tokens[p], pad_id)).double()
             for p in batch_positions(len(data), batch_size, None)]  # each (3, B)
    nll, count, correct = torch.cat(parts, 1).numpy() if parts else np.zeros((3, 0))
    n = np.maximum(count, 1)
    return pd.DataFrame({"example_id": data.example_ids.numpy(), "nll": nll, "tokens": count, "correct": correct,
                         "loss": nll / n, "token_acc": correct / n})
