"""Per-example gradients from the first epoch of training (METHODS.md §5, first-epoch gradient ascent).

During the first epoch of the original training, at every optimizer step
and at that step's parameters, store each example's gradient
g_i = grad_θ CE(f_θ(x_i), y_i) for a chosen set of layers (by default only
the input layer: the paper found the embedding layer alone enough).
``first_epoch_ga`` later ascends along Σ_{i∈F} g_i.

BatchNorm: in train mode an example's output depends on its whole batch, so
"its own gradient" needs a convention. Here BatchNorm normalizes with the
statistics of the example's batch at that step, held fixed (the train-mode
forward reproduced exactly, without the cross-example terms). Computed with
``torch.func.vmap`` over ``grad``: measured on a 2-core CPU (small CNN,
batch 128, 28x28) it costs ~2 training steps per batch, a per-example loop
~30. Recording never changes training: parameters, ``.grad`` and running
statistics are untouched.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..io import atomic_write, require

INPUT_LAYER = "input"  # layer alias: the module that owns the model's first parameter


def select_parameters(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """Names of the parameters under the module prefixes ``layers`` (``input`` = the input layer)."""
    names = [n for n, _ in model.named_parameters()]
    first_module = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
    chosen = []
    for layer in layers:
        prefix = first_module if layer == INPUT_LAYER else layer
        matched = [n for n in names if n == prefix or not prefix or n.startswith(prefix + ".")]
        if not matched:
            modules = sorted({n.rsplit(".", 1)[0] for n in names})
            raise ValueError(f"train_records.first_epoch_grads: {layer!r} matches no parameter; use '{INPUT_LAYER}' "
                             f"or a module name among {modules}")
        chosen += [n for n in matched if n not in chosen]
    return [n for n in names if n in chosen]  # model order


def batch_stat_buffers(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Copies of the model's buffers with every BatchNorm's running mean/var replaced by the
    statistics of batch ``x`` (as train mode computes them: biased variance), so that an
    eval-mode forward with these buffers equals the train-mode forward on ``x``."""
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    module_names = {m: n for n, m in model.named_modules()}

    def capture(module, args):  # forward pre-hook: the BN input (B, C, ...) -> its batch statistics
        inp = args[0]
        dims = [0, *range(2, inp.dim())]
        prefix = module_names[module] + "." if module_names[module] else ""
        buffers[prefix + "running_mean"].copy_(inp.mean(dims))
        buffers[prefix + "running_var"].copy_(inp.var(dims, unbiased=False))

    hooks = [m.register_forward_pre_hook(capture) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():  # layer by layer: each BN sees inputs already normalized by batch statistics
            functional_call(model, ({n: p.detach() for n, p in model.named_parameters()}, buffers), (x,))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return buffers


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Per-example CE gradients of the parameters ``names``, flattened and concatenated: (B, P)."""
    buffers = batch_stat_buffers(model, x) if model.training else {n: b for n, b in model.named_buffers()}
    params = {n: p.detach() for n, p in model.named_parameters()}
    chosen = {n: params[n] for n in names}
    fixed = {n: p for n, p in params.items() if n not in chosen}

    def loss(chosen_params, xi, yi):  # one example: xi (C, H, W), yi ()
        logits = functional_call(model, ({**fixed, **chosen_params}, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    was_training = model.training
    model.eval()  # BatchNorm reads the (batch-statistic) buffers and never updates them
    try:
        grads = vmap(grad(loss), in_dims=(None, 0, 0))(chosen, x, y)  # {name: (B, *shape)}
    finally:
        model.train(was_training)
    return torch.cat([grads[n].flatten(1) for n in names], dim=1)


@dataclass(frozen=True)
class FirstEpochGrads:
    """Stored first-epoch gradients, keyed by example_id: row i of ``grads`` belongs to ``example_ids[i]``."""

    example_ids: torch.Tensor  # (N,) int64
    grads: torch.Tensor  # (N, P) float32, each row the concatenation of the flattened layers
    names: tuple[str, ...]  # parameter names, in column order
    shapes: tuple[tuple[int, ...], ...]

    def rows(self, ids) -> torch.Tensor:
        """The stored gradients of ``ids``: (n, P); every id must be stored."""
        ids = np.asarray(ids, dtype=np.int64).ravel().tolist()
        index = {e: i for i, e in enumerate(self.example_ids.tolist())}
        missing = [i for i in ids if i not in index]
        if missing:
            raise ValueError(f"first-epoch gradients lack {len(missing)} requested example(s) (e.g. id {missing[0]}); "
                             "rerun the train stage on this training set")
        return self.grads[torch.tensor([index[i] for i in ids], dtype=torch.long)]

    def summed(self, ids) -> dict[str, torch.Tensor]:
        """Σ_{i ∈ ids} g_i, unflattened per parameter name."""
        return self.unflatten(self.rows(ids).double().sum(0).float())

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        return {n: part.view(s) for n, s, part in zip(self.names, self.shapes, flat.split(sizes))}


class FirstEpochGradRecorder:
    """An ``on_step`` hook for ``fit``: stores each example's gradient the first time it is seen,
    i.e. during the first epoch (which visits every example once); later steps cost one check."""

    def __init__(self, model: nn.Module, example_ids: torch.Tensor, layers: Sequence[str] = (INPUT_LAYER,)):
        self.names = select_parameters(model, layers)
        params = dict(model.named_parameters())
        self.shapes = tuple(tuple(params[n].shape) for n in self.names)
        self.example_ids = example_ids.cpu()
        self.grads = torch.zeros(len(example_ids), sum(math.prod(s) for s in self.shapes))  # (N, P)
        self.recorded = torch.zeros(len(example_ids), dtype=torch.bool)
        self.seconds = 0.0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor) -> None:
        positions = positions.cpu()
        new = ~self.recorded[positions]
        if not bool(new.any()):
            return
        start = time.perf_counter()
        g = per_example_grads(model, x, y, self.names)  # the whole batch: its BN statistics
        self.grads[positions[new]] = g[new.to(g.device)].float().cpu()
        self.recorded[positions[new]] = True
        self.seconds += time.perf_counter() - start

    def result(self) -> FirstEpochGrads:
        if not bool(self.recorded.all()):
            raise RuntimeError(f"{int((~self.recorded).sum())} examples have no first-epoch gradient; "
                               "the recorder must see a full epoch of fit")
        return FirstEpochGrads(self.example_ids.clone(), self.grads.clone(), tuple(self.names), self.shapes)


def save_first_epoch_grads(grads: FirstEpochGrads, path: Path) -> None:
    payload = {"example_ids": grads.example_ids, "grads": grads.grads, "names": list(grads.names),
               "shapes": [list(s) for s in grads.shapes]}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_first_epoch_grads(path: Path) -> FirstEpochGrads:
    path = require(path, "train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        grads = FirstEpochGrads(payload["example_ids"], payload["grads"], tuple(payload["names"]),
                                tuple(tuple(s) for s in payload["shapes"]))
    except Exception as exc:
        raise RuntimeError(f"{path} is unreadable ({type(exc).__name__}); rerun `dvc repro --force train`") from None
    return grads
