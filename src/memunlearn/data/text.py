"""Token-sequence splits keyed by ``example_id``: the text counterpart of ``ImageSplit``.

A text example is one fixed-length token sequence (N, T), right-padded with
``pad_id`` (only canaries are shorter than T); the loss skips pad targets.
``TextSplit`` offers ``ImageSplit``'s id API (take, select_ids, drop_ids,
id_mask, concat), which is all that forget sets, partitions and stores use,
and its training batches (``TokenBatch``, whose loss is modality/text/lm.py's
next-token loss), which is all that finetune, neggrad and neggrad_plus use:
see ``data/base.py``'s ``ExampleSplit``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..io import atomic_write, require
from .splits import batch_positions


def sequence_nll(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence: summed next-token NLL (B,), non-pad target count (B,), correct next tokens (B,)."""
    targets = tokens[:, 1:]  # (B, T-1)
    mask = targets != pad_id
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")  # (B, T-1)
    nll = (nll * mask).sum(1)
    correct = ((logits[:, :-1].argmax(-1) == targets) & mask).sum(1)
    return nll, mask.sum(1), correct


class TokenBatch(tuple):
    """A language-model batch: (tokens (B, T), pad_id); unpacks as ``tokens, pad_id``."""

    def __new__(cls, tokens: torch.Tensor, pad_id: int):
        return super().__new__(cls, (tokens, pad_id))

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        """The mean over sequences of each sequence's mean next-token cross-entropy (modality/text/lm.py's loss)."""
        tokens, pad_id = self
        nll, count, _ = sequence_nll(model(tokens), tokens, pad_id)
        return (nll / count.clamp_min(1)).mean()


@dataclass(frozen=True)
class TextSplit:
    tokens: torch.Tensor  # (N, T) int64, right-padded with TextInfo.pad_id
    example_ids: torch.Tensor  # (N,) int64, unique and stable across runs

    def __post_init__(self):
        if self.tokens.dim() != 2 or len(self.tokens) != len(self.example_ids):
            raise ValueError("tokens must be (N, T) and example_ids (N,)")

    def __len__(self) -> int:
        return len(self.example_ids)

    def fingerprint(self) -> str:
        """16 hex digits over the split's tokens and example ids, in order: the caches' keys."""
        digest = hashlib.sha256()
        for tensor in (self.tokens, self.example_ids):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def take(self, positions) -> "TextSplit":
        """Rows at ``positions`` (indices or a boolean mask)."""
        positions = torch.as_tensor(positions)
        return TextSplit(self.tokens[positions], self.example_ids[positions])

    def select_ids(self, ids) -> "TextSplit":
        return self.take(self.id_mask(ids))

    def drop_ids(self, ids) -> "TextSplit":
        return self.take(~self.id_mask(ids))

    def id_mask(self, ids) -> torch.Tensor:
        return torch.isin(self.example_ids, torch.from_numpy(np.array(ids, dtype=np.int64).ravel()))

    def concat(self, other: "TextSplit") -> "TextSplit":
        return TextSplit(torch.cat([self.tokens, other.tokens]), torch.cat([self.example_ids, other.example_ids]))

    def training_batches(self, info: "TextInfo", batch_size: int, gen: torch.Generator | None,
                         device) -> Iterator[TokenBatch]:
        """One pass (shuffled if ``gen``) as device token batches."""
        for positions in batch_positions(len(self), batch_size, gen):
            yield TokenBatch(self.tokens[positions].to(device), info.pad_id)


@dataclass(frozen=True)
class TextInfo:
    """What a language model needs to know about the data (the text ``meta.json``)."""

    name: str  # corpus
    vocab_size: int
    seq_len: int  # T
    pad_id: int
    eos_id: int
    corpus_sha256: str  # the corpus text (pydoc_topics changes with the Python version)
    tokenizer_sha256: str

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict) -> "TextInfo":
        return cls(**d)


def save_text_split(split: TextSplit, path: Path) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, tokens=split.tokens.numpy(),
                                                     example_ids=split.example_ids.numpy()))


def load_text_split(path: Path) -> TextSplit:
    with np.load(require(path, "prepare")) as z:
        return TextSplit(torch.from_numpy(z["tokens"]), torch.from_numpy(z["example_ids"]))


def save_text_info(info: TextInfo, path: Path) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(info.to_json(), indent=2).encode()))


def load_text_info(path: Path) -> TextInfo:
    return TextInfo.from_json(json.loads(require(path, "prepare").read_text()))
