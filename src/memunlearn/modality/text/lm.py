"""Language-model training and per-sequence scoring over in-memory ``TextSplit``s.

A sequence's loss is its mean next-token CE over non-pad targets; a batch's
loss is the mean of its sequences' losses, so a short canary weighs as much
as a full chunk and g_i (modality/text/lm_grads.py) is the gradient of one
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

from ...config import check_positive
from ...data.text import TextInfo, TextSplit, sequence_nll
from ...io import atomic_write, require
from ...models.base import LM_MODELS, build_lm
from ...training.events import LearningEventRecorder
from ...training.loop import batch_positions, lr_schedule

# on_step(model, tokens (B, T), positions (B,)) -> None, before the step's forward
LMStepHook = Callable[[nn.Module, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class LMTrainConfig:
    model: str = "gpt2_tiny"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3  # AdamW
    weight_decay: float = 0.0
    momentum: float = 0.9  # AdamW's beta1 (its momentum coefficient; the default 0.9)
    lr_milestones: tuple[int, ...] = ()  # lr *= lr_gamma at these epochs; () = constant
    lr_gamma: float = 0.1
    lr_schedule: str = "step"  # step (lr_milestones) | cosine: training/loop.py lr_schedule
    grad_clip: float = 1.0  # max global gradient norm per step (GPT-2's recipe); 0 = off. Without it gpt2_tiny
    #                         at lr 3e-3 stalls near the unigram loss for some seeds (README, "Text")

    def validate(self) -> None:
        LM_MODELS.get(self.model)
        for name in ("epochs", "batch_size", "lr"):
            check_positive(getattr(self, name), f"lm_train.{name}")
        if self.grad_clip < 0:
            raise ValueError(f"lm_train.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")

    @classmethod
    def of(cls, recipe) -> "LMTrainConfig":
        """The language-model recipe of params ``train`` (``TrainConfig``): the same keys, AdamW for SGD, with
        ``train.momentum`` as AdamW's beta1."""
        return cls(model=recipe.model, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                   weight_decay=recipe.weight_decay, momentum=recipe.momentum,
                   lr_milestones=tuple(recipe.lr_milestones), lr_gamma=recipe.lr_gamma,
                   lr_schedule=recipe.lr_schedule)


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


class TokenEventRecorder(LearningEventRecorder):
    """Learning events (training/events.py's columns) of a language model, per sequence, from the training
    forward passes: each step's per-token statistics averaged over the sequence's non-pad targets, then over
    steps: ``confidence`` p(next token), ``max_conf``, ``entropy``, ``binary_acc`` (next-token accuracy). So
    the learning-event proxies read a text run's table as they read an image run's."""

    def __init__(self, example_ids: torch.Tensor, pad_id: int):
        super().__init__(example_ids)
        self.pad_id = pad_id

    @torch.no_grad()
    def __call__(self, positions: torch.Tensor, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        start = time.perf_counter()
        log_p = F.log_softmax(logits[:, :-1].float(), -1)  # (B, T-1, V)
        p = log_p.exp()
        targets = tokens[:, 1:]
        mask = (targets != self.pad_id).double()  # (B, T-1)
        per_token = torch.stack([p.gather(2, targets.unsqueeze(2)).squeeze(2), p.max(-1).values,
                                 -(p * log_p).sum(-1), (p.argmax(-1) == targets).float()]).double()  # (4, B, T-1)
        self._add(positions, (per_token * mask).sum(2) / mask.sum(1).clamp_min(1))  # stats (4, B)
        self.seconds += time.perf_counter() - start


# on_batch(positions (B,), logits (B, T, V), tokens (B, T)): the training forward's outputs (TokenEventRecorder)
LMBatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def fit_lm(model: nn.Module, data: TextSplit, cfg: LMTrainConfig, pad_id: int, gen: torch.Generator, *,
           on_step: LMStepHook | None = None, events: SequenceEventRecorder | None = None,
           on_batch: LMBatchHook | None = None, device: torch.device | str = "cpu",
           on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``model`` in place (AdamW, gradient norm clipped at ``grad_clip``, the recipe's lr schedule);
    return per-epoch rows (epoch,
    train_loss, train_token_acc, seconds), each also handed to ``on_row``."""
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(cfg.momentum, 0.999))
    schedule = lr_schedule(optimizer, cfg)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        start, loss_sum, tokens_right, tokens_all = time.perf_counter(), 0.0, 0, 0
        for positions in batch_positions(len(data), cfg.batch_size, gen):
            x = data.tokens[positions].to(device)  # (B, T)
            if on_step is not None:  # sees the parameters this step's gradient is taken at
                on_step(model, x, positions)
            logits = model(x)  # (B, T, V)
            nll, count, correct = sequence_nll(logits, x, pad_id)
            loss = (nll / count.clamp_min(1)).mean()
            if events is not None:
                events(epoch, positions, nll.cpu(), count.cpu(), correct.cpu())
            if on_batch is not None:
                on_batch(positions, logits.detach(), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_sum += loss.item() * len(x)
            tokens_right, tokens_all = tokens_right + int(correct.sum()), tokens_all + int(count.sum())
        schedule.step()
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / len(data),
                        "train_token_acc": tokens_right / max(tokens_all, 1),
                        "seconds": time.perf_counter() - start})
        if on_row is not None:
            on_row(history[-1])
    return history


@torch.no_grad()
def score_sequences(model: nn.Module, data: TextSplit, pad_id: int, batch_size: int = 256) -> pd.DataFrame:
    """Eval mode, per sequence: example_id, nll (summed), tokens, correct, loss (mean token NLL), token_acc."""
    model.eval()
    device = next(model.parameters()).device
    parts = [torch.stack(sequence_nll(model(data.tokens[p].to(device)), data.tokens[p].to(device), pad_id)).double().cpu()
             for p in batch_positions(len(data), batch_size, None)]  # each (3, B)
    nll, count, correct = torch.cat(parts, 1).numpy() if parts else np.zeros((3, 0))
    n = np.maximum(count, 1)
    return pd.DataFrame({"example_id": data.example_ids.numpy(), "nll": nll, "tokens": count, "correct": correct,
                         "loss": nll / n, "token_acc": correct / n})


# ---- checkpoints ---------------------------------------------------------------

def save_lm_checkpoint(model: nn.Module, model_name: str, info: TextInfo, path) -> None:
    """A language model with what rebuilds it (name, vocabulary size, context), written atomically."""
    payload = {"model": model_name, "text_info": info.to_json(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if hasattr(model, "hf_config"):  # a model trained elsewhere (modality/text/pretrained.py): its architecture
        payload["hf_config"] = model.hf_config()
    atomic_write(path, lambda f: torch.save(payload, f))


def load_lm_checkpoint(path, produced_by: str) -> tuple[nn.Module, str, TextInfo]:
    """(model on CPU, model name, the text info it was trained with)."""
    path = require(path, produced_by)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        info = TextInfo.from_json(payload["text_info"])
        if "hf_config" in payload:
            from .pretrained import from_hf_config

            model = from_hf_config(payload["hf_config"])
        else:
            model = build_lm(payload["model"], info.vocab_size, info.seq_len, seed=0)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise RuntimeError(f"checkpoint {path} is unreadable ({type(exc).__name__}); rerun "
                           f"`dvc repro --force {produced_by}`") from None
    return model, payload["model"], info
