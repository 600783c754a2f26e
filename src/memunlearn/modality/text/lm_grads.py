"""Per-sequence first-epoch gradients of a language model, the token embedding stored sparsely (first-epoch gradient ascent).

g_i = ∇_θ L_i, L_i = sequence i's mean next-token NLL, taken at the step's
parameters the first time sequence i is trained on (the first epoch),
for a layer set:
- ``embedding``: the token embedding (V, D). Row v of g_i is
  Σ_{t: x_it = v} ∂L_i/∂e_it (e_it the looked-up embedding), so only the
  rows of tokens the sequence contains are nonzero: stored as (token ids
  (k_i,), rows (k_i, D)), k_i ≤ T instead of V rows. Exact and cheap: one
  backward to ``inputs_embeds`` per batch (sequences are independent:
  layer norm and attention act within a sequence, and dropout is off).
- ``block:<i>`` (``block:-1`` = the last block), ``head`` (the output
  layer), a module name, or ``all``: stored dense, one backward per sequence.
``all`` stores the embedding sparsely too. Recording never changes
training (no parameter or ``.grad`` is touched).

``every_epoch=True`` (the ``all_epochs`` gradient source, the paper's multi-epoch control) adds sequence i's
gradient at every step it is trained on, over every epoch, into the same store: Σ_e g_i^(e), same shapes and
sparse rows (a sequence touches the same tokens every epoch), at the cost of one recording per step instead of
the first epoch's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...data.text import TextSplit, sequence_nll
from ...io import atomic_write, require
from ...memory import check_first_epoch_store
from .gpt2 import EMBEDDING

ALL = "all"
EMBEDDING_LAYER = "embedding"
HEAD_LAYER = "head"  # the output layer (lm_head), untied from the embedding
BLOCK = "block:"  # block:<i>, Python indexing (block:-1 = the last block)


def layer_parameters(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """Parameter names (model order) of the layer set; aliases above, else module-name prefixes."""
    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for layer in layers:
        if layer == ALL:
            prefix = ""
        elif layer == EMBEDDING_LAYER:
            prefix = EMBEDDING
        elif layer == HEAD_LAYER:
            prefix = "gpt.lm_head"
        elif layer.startswith(BLOCK):
            try:
                prefix = f"gpt.transformer.h.{range(model.n_layer)[int(layer[len(BLOCK):])]}"
            except (ValueError, IndexError):
                raise ValueError(f"lm first-epoch gradients: {layer!r} names no block; use block:0 .. "
                                 f"block:{model.n_layer - 1} or block:-1 (the last)") from None
        else:
            prefix = layer
        matched = [n for n in names if not prefix or n == prefix or n.startswith(prefix + ".")]
        if not matched:
            raise ValueError(f"lm first-epoch gradients: layer {layer!r} matches no parameter; use {EMBEDDING_LAYER}, "
                             f"{HEAD_LAYER}, block:<i>, {ALL} or a module name (e.g. gpt.transformer.ln_f)")
        chosen.update(matched)
    return [n for n in names if n in chosen]


def embedding_grads(model: nn.Module, tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """∂L_i/∂e_it for every sequence and position: (B, T, D), L_i = mean token NLL of sequence i."""
    params = dict(model.named_parameters())
    embeds = nn.functional.embedding(tokens, params[EMBEDDING].detach()).requires_grad_(True)  # (B, T, D)
    with torch.enable_grad():
        nll, count, _ = sequence_nll(model(inputs_embeds=embeds), tokens, pad_id)
        (d,) = torch.autograd.grad((nll / count.clamp_min(1)).sum(), embeds)  # Σ_i L_i: row i gets ∂L_i only
    return d


def sparse_rows(tokens: torch.Tensor, d: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence: (T,) tokens and (T, D) position gradients -> touched token ids (k,), rows (k, D).

    Accumulated exactly as the dense embedding gradient is (index_add_ over positions into a (V, D) zero
    matrix), then its touched rows kept, so sparse == dense[touched] bit for bit."""
    dense = torch.zeros(vocab_size, d.shape[1], dtype=d.dtype).index_add_(0, tokens, d)  # (V, D)
    touched = torch.unique(tokens)  # sorted
    return touched, dense[touched]


def dense_grads(model: nn.Module, tokens: torch.Tensor, pad_id: int, names: Sequence[str]) -> torch.Tensor:
    """Per-sequence gradients of parameters ``names``, flattened and concatenated: (B, P); one backward each."""
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names]
    rows = []
    with torch.enable_grad():
        for i in range(len(tokens)):
            x = tokens[i:i + 1]
            nll, count, _ = sequence_nll(model(x), x, pad_id)
            grads = torch.autograd.grad((nll / count.clamp_min(1)).sum(), chosen)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows).detach()


@dataclass(frozen=True)
class LMFirstEpochGrads:
    """Stored first-epoch gradients keyed by example_id: dense layers as (N, P) rows, the embedding as CSR rows."""

    example_ids: torch.Tensor  # (N,) int64
    dense: torch.Tensor  # (N, P) float32; P = Σ numel over dense_names
    dense_names: tuple[str, ...]
    dense_shapes: tuple[tuple[int, ...], ...]
    embedding_shape: tuple[int, ...] | None  # (V, D) when the embedding is stored
    indptr: torch.Tensor  # (N + 1,) int64: sequence i's rows are [indptr[i], indptr[i+1])
    row_tokens: torch.Tensor  # (nnz,) int64
    rows: torch.Tensor  # (nnz, D) float32

    def fingerprint(self) -> str:
        """16 hex digits over the stored gradients by content (the unlearning cache's key)."""
        digest = hashlib.sha256(repr((self.dense_names, self.dense_shapes, self.embedding_shape)).encode())
        for tensor in (self.example_ids, self.dense, self.indptr, self.row_tokens, self.rows):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def positions(self, ids) -> torch.Tensor:
        index = {e: i for i, e in enumerate(self.example_ids.tolist())}
        ids = np.asarray(ids, dtype=np.int64).ravel().tolist()
        missing = [i for i in ids if i not in index]
        if missing:
            raise ValueError(f"first-epoch gradients lack {len(missing)} requested sequence(s) (e.g. id {missing[0]}); "
                             "record them while training on this training set")
        return torch.tensor([index[i] for i in ids], dtype=torch.long)

    def embedding(self, example_id: int) -> torch.Tensor:
        """One sequence's dense embedding gradient (V, D) (zeros outside the touched rows)."""
        i = int(self.positions([example_id])[0])
        out = torch.zeros(self.embedding_shape)
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        out[self.row_tokens[lo:hi]] = self.rows[lo:hi]
        return out

    def summed(self, ids) -> dict[str, torch.Tensor]:
        """Σ_{i ∈ ids} g_i per parameter name (float64 accumulation)."""
        pos = self.positions(ids)
        out = {}
        if self.dense_names:
            total = self.dense[pos].double().sum(0)
            for name, shape, part in zip(self.dense_names, self.dense_shapes,
                                         total.split([math.prod(s) for s in self.dense_shapes])):
                out[name] = part.float().view(shape)
        if self.embedding_shape is not None:
            emb = torch.zeros(self.embedding_shape, dtype=torch.float64)
            for i in pos.tolist():
                lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
                emb.index_add_(0, self.row_tokens[lo:hi], self.rows[lo:hi].double())
            out[EMBEDDING] = emb.float()
        return out

    def nbytes(self) -> dict[str, int]:
        """Bytes stored: dense layers, the sparse embedding, and what the embedding would take dense."""
        n = len(self.example_ids)
        sparse = self.rows.numel() * 4 + self.row_tokens.numel() * 8 + self.indptr.numel() * 8
        dense_emb = n * math.prod(self.embedding_shape) * 4 if self.embedding_shape is not None else 0
        return {"dense_layers": self.dense.numel() * 4, "embedding_sparse": sparse if dense_emb else 0,
                "embedding_if_dense": dense_emb}


class LMFirstEpochGradRecorder:
    """An ``on_step`` hook for ``fit_lm``: stores each sequence's gradient the first time it is trained on, or
    (``every_epoch``) the sum of its gradients over every step it is trained on."""

    def __init__(self, model: nn.Module, example_ids: torch.Tensor, pad_id: int,
                 layers: Sequence[str] = (EMBEDDING_LAYER,), every_epoch: bool = False):
        names = layer_parameters(model, layers)
        params = dict(model.named_parameters())
        self.embedding = EMBEDDING in names
        self.dense_names = tuple(n for n in names if n != EMBEDDING)
        self.dense_shapes = tuple(tuple(params[n].shape) for n in self.dense_names)
        self.vocab_size = params[EMBEDDING].shape[0]
        self.embedding_shape = tuple(params[EMBEDDING].shape) if self.embedding else None
        self.example_ids, self.pad_id = example_ids.cpu(), pad_id
        n = len(example_ids)
        check_first_epoch_store(n, sum(math.prod(s) for s in self.dense_shapes), layers)  # before allocating
        self.dense = torch.zeros(n, sum(math.prod(s) for s in self.dense_shapes))  # (N, P)
        self.sparse: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n
        self.recorded = torch.zeros(n, dtype=torch.bool)
        self.every_epoch = every_epoch
        self.seconds = 0.0

    def __call__(self, model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor) -> None:
        take = torch.ones_like(positions, dtype=torch.bool) if self.every_epoch else ~self.recorded[positions]
        if not bool(take.any()):
            return
        start = time.perf_counter()
        tokens, positions = tokens[take], positions[take]  # a batch holds each position once
        if self.embedding:
            d = embedding_grads(model, tokens, self.pad_id)  # (B, T, D)
            for x, di, p in zip(tokens, d, positions.tolist()):
                touched, rows = sparse_rows(x, di, self.vocab_size)
                if self.sparse[p] is not None:  # every_epoch: the same tokens, so the same touched rows
                    rows = self.sparse[p][1] + rows
                self.sparse[p] = touched, rows
        if self.dense_names:
            g = dense_grads(model, tokens, self.pad_id, self.dense_names)  # (B, P)
            self.dense[positions] = self.dense[positions] + g if self.every_epoch else g
        self.recorded[positions] = True
        self.seconds += time.perf_counter() - start

    def result(self) -> LMFirstEpochGrads:
        if not bool(self.recorded.all()):
            raise RuntimeError(f"{int((~self.recorded).sum())} sequences have no first-epoch gradient; "
                               "the recorder must see a full epoch of fit_lm")
        if self.embedding:
            counts = torch.tensor([len(t) for t, _ in self.sparse])
            indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
            row_tokens = torch.cat([t for t, _ in self.sparse])
            rows = torch.cat([r for _, r in self.sparse])
        else:
            indptr, row_tokens, rows = torch.zeros(1, dtype=torch.long), torch.zeros(0, dtype=torch.long), \
                torch.zeros(0, 0)
        return LMFirstEpochGrads(self.example_ids.clone(), self.dense.clone(), self.dense_names, self.dense_shapes,
                                 self.embedding_shape, indptr, row_tokens, rows)


def grads_at(model: nn.Module, data: TextSplit, pad_id: int, layers: Sequence[str], batch_size: int = 32
             ) -> LMFirstEpochGrads:
    """Every sequence's gradient at the model's current parameters (e.g. after the last epoch: the ablation
    against first-epoch gradients)."""
    recorder = LMFirstEpochGradRecorder(model, data.example_ids, pad_id, layers)
    was_training = model.training
    model.eval()  # no dropout either way; eval keeps it explicit
    try:
        for positions in torch.arange(len(data)).split(batch_size):
            recorder(model, data.tokens[positions], positions)
    finally:
        model.train(was_training)
    return recorder.result()


def layer_set_bytes(grads: LMFirstEpochGrads, names: Sequence[str]) -> int:
    """Bytes the stored gradients of parameters ``names`` take (the embedding as stored: sparse)."""
    n = len(grads.example_ids)
    total = sum(n * math.prod(s) * 4 for name, s in zip(grads.dense_names, grads.dense_shapes) if name in names)
    if EMBEDDING in names:
        total += grads.nbytes()["embedding_sparse"]
    return total


def save_lm_grads(grads: LMFirstEpochGrads, path: Path) -> None:
    payload = {f.name: getattr(grads, f.name) for f in dataclasses.fields(grads)}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_lm_grads(path: Path) -> LMFirstEpochGrads:
    path = require(path, "train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return LMFirstEpochGrads(**{**payload, "dense_names": tuple(payload["dense_names"]),
                                    "dense_shapes": tuple(tuple(s) for s in payload["dense_shapes"]),
                                    "embedding_shape": (tuple(payload["embedding_shape"])
                                                        if payload["embedding_shape"] is not None else None)})
    except Exception as exc:
        raise RuntimeError(f"{path} is unreadable ({type(exc).__name__}); record the gradients again") from None
