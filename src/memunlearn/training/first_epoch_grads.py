"""Per-example gradients from the first epoch of training (docs/methods.md §5, first-epoch gradient ascent).

During the first epoch of the original training, at every optimizer step
and at that step's parameters, store each example's gradient
g_i = grad_θ CE(f_θ(x_i), y_i) for a chosen set of layers.
``first_epoch_ga`` later ascends along Σ_{i∈F} g_i.

Which layers (``DEFAULT_LAYERS`` = ``head`` and ``penultimate``). The paper
("A More Practical Approach to Machine Unlearning") found GPT-2's token
embedding alone enough: a layer whose gradient rows are example-specific
(only the tokens an example contains get a gradient). A CNN's input conv is
the opposite, a few weights shared by every pixel of every image (144 on the
small CNN): the most shared layer there is. The layers whose per-example
gradients carry example-specific information here are the fully connected
ones at the top: a Linear layer's per-example weight gradient is the outer
product δ_i a_iᵀ of the example's own output error and its own features, so
the head (the class decision) and the penultimate layer (the features behind
it) are the defaults. Which layer matters is an empirical question per model:
compare them with ``train_records.first_epoch_grads``. ``input`` (the module that
owns the first parameter) stays available, and any module name works.
Aliases: ``head`` = the model's ``head``; ``penultimate`` = the last Linear or
Conv layer before the head (small CNN: ``fc.1``; ResNet-18: the last block's
``conv2``, stored dense: 2.4M values per example, so on CIFAR-sized data the
recorder refuses it before training (over ``MEMUNLEARN_MAX_BUFFER_GIB``, memory.py) and names [head] instead).

Storage: an nn.Linear weight fed (B, in) inputs is stored factored, δ_i and
a_i (out + in values per example instead of out·in: 1,824 instead of 401,408
for the small CNN's penultimate layer), which is exact because its
per-example gradient is rank one; every other parameter is stored dense.

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

import hashlib
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
from ..memory import check_first_epoch_store

INPUT_LAYER = "input"  # layer alias: the module that owns the model's first parameter
HEAD_LAYER = "head"  # the model's final nn.Linear
PENULTIMATE_LAYER = "penultimate"  # the last Linear/Conv layer before the head
DEFAULT_LAYERS = (HEAD_LAYER, PENULTIMATE_LAYER)  # where first-epoch gradients are example-specific (docstring)


def penultimate_module(model: nn.Module) -> str:
    """Name of the last nn.Linear / nn.Conv layer registered before ``model.head``."""
    head = getattr(model, "head", None)
    last = None
    for name, module in model.named_modules():
        if module is head:
            break
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            last = name
    if last is None:
        raise ValueError("train_records.first_epoch_grads: 'penultimate' needs a Linear or Conv layer before the "
                         "model's head; name the module instead")
    return last


def select_parameters(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """Names of the parameters under the module prefixes ``layers`` (aliases: ``input`` = the input layer,
    ``penultimate`` = the last Linear/Conv layer before the head; ``head`` is the head module's name)."""
    names = [n for n, _ in model.named_parameters()]
    first_module = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
    chosen = []
    for layer in layers:
        prefix = (first_module if layer == INPUT_LAYER else penultimate_module(model) if layer == PENULTIMATE_LAYER
                  else layer)
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


def factorable(model: nn.Module, name: str) -> bool:
    """Whether parameter ``name`` is an nn.Linear weight (per-example gradient δ_i a_iᵀ, stored factored)."""
    module_name, _, leaf = name.rpartition(".")
    return leaf == "weight" and isinstance(dict(model.named_modules()).get(module_name), nn.Linear)


def linear_factors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """For nn.Linear weights ``names``: per example [δ_i, a_i] concatenated per layer, (B, Σ (out + in)),
    where δ_i = ∂CE_i/∂(layer output) and a_i the layer input, so ∂CE_i/∂W = δ_i a_iᵀ exactly.

    Same BatchNorm convention as ``per_example_grads`` (batch statistics held fixed), so examples are
    independent and the gradient of the summed loss with respect to output row i is example i's own δ_i."""
    buffers = batch_stat_buffers(model, x) if model.training else {n: b for n, b in model.named_buffers()}
    params = {n: p.detach() for n, p in model.named_parameters()}
    modules = dict(model.named_modules())
    inputs, probes, hooks = {}, {}, []

    def capture(module_name):
        def hook(module, args, out):
            if args[0].dim() != 2:
                raise ValueError(f"first-epoch gradients: {module_name} gets {args[0].dim()}-D input; only a Linear "
                                 "fed (batch, features) has rank-one per-example gradients")
            inputs[module_name] = args[0].detach()
            probes[module_name] = torch.zeros_like(out, requires_grad=True)  # ∂loss/∂probe = ∂loss/∂out
            return out + probes[module_name]
        return hook

    layer_names = [n.rpartition(".")[0] for n in names]
    was_training = model.training
    model.eval()
    try:
        hooks = [modules[m].register_forward_hook(capture(m)) for m in layer_names]
        with torch.enable_grad():
            logits = functional_call(model, (params, buffers), (x,))
            deltas = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"),
                                         [probes[m] for m in layer_names])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return torch.cat([torch.cat([d, inputs[m]], dim=1) for d, m in zip(deltas, layer_names)], dim=1)


@dataclass(frozen=True)
class FirstEpochGrads:
    """Stored first-epoch gradients, keyed by example_id: row i of ``grads`` belongs to ``example_ids[i]``.

    A row concatenates the layers in ``names`` order: a dense layer as its flattened gradient, a
    ``factored`` one (an nn.Linear weight of shape (out, in)) as [δ_i (out), a_i (in)], gradient δ_i a_iᵀ."""

    example_ids: torch.Tensor  # (N,) int64
    grads: torch.Tensor  # (N, P_stored) float32
    names: tuple[str, ...]  # parameter names, in column order
    shapes: tuple[tuple[int, ...], ...]
    factored: tuple[str, ...] = ()  # names stored as [δ, a]

    def widths(self) -> list[int]:
        return [s[0] + s[1] if n in self.factored else math.prod(s) for n, s in zip(self.names, self.shapes)]

    def fingerprint(self) -> str:
        """16 hex digits over the stored gradients by content (the unlearning cache's key)."""
        digest = hashlib.sha256(repr((self.names, self.shapes, self.factored)).encode())
        for tensor in (self.example_ids, self.grads):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def rows(self, ids) -> torch.Tensor:
        """The stored rows of ``ids``: (n, P_stored); every id must be stored."""
        ids = np.asarray(ids, dtype=np.int64).ravel().tolist()
        index = {e: i for i, e in enumerate(self.example_ids.tolist())}
        missing = [i for i in ids if i not in index]
        if missing:
            raise ValueError(f"first-epoch gradients lack {len(missing)} requested example(s) (e.g. id {missing[0]}); "
                             "rerun the train stage on this training set")
        return self.grads[torch.tensor([index[i] for i in ids], dtype=torch.long)]

    def per_example(self, ids) -> dict[str, torch.Tensor]:
        """Each layer's per-example gradients of ``ids``, (n, *shape), factored layers expanded."""
        out = {}
        for name, shape, part in zip(self.names, self.shapes, self.rows(ids).split(self.widths(), dim=1)):
            if name in self.factored:
                out[name] = part[:, :shape[0], None] * part[:, None, shape[0]:]  # δ_i a_iᵀ
            else:
                out[name] = part.reshape(len(part), *shape)
        return out

    def summed(self, ids) -> dict[str, torch.Tensor]:
        """Σ_{i ∈ ids} g_i per parameter name (float64 accumulation; factored layers as Σ δ_i a_iᵀ = Δᵀ A)."""
        out = {}
        for name, shape, part in zip(self.names, self.shapes, self.rows(ids).double().split(self.widths(), dim=1)):
            if name in self.factored:
                out[name] = (part[:, :shape[0]].T @ part[:, shape[0]:]).float()
            else:
                out[name] = part.sum(0).float().view(shape)
        return out


def stored_values(model: nn.Module, layers: Sequence[str]) -> int:
    """Values stored per example for ``layers`` of ``model`` (Linear weights factored: out + in)."""
    params = dict(model.named_parameters())
    return sum(params[n].shape[0] + params[n].shape[1] if factorable(model, n) else params[n].numel()
               for n in select_parameters(model, layers))


class FirstEpochGradRecorder:
    """An ``on_step`` hook for ``fit``: stores each example's gradient the first time it is seen,
    i.e. during the first epoch (which visits every example once); later steps cost one check."""

    def __init__(self, model: nn.Module, example_ids: torch.Tensor, layers: Sequence[str] = DEFAULT_LAYERS):
        self.names = select_parameters(model, layers)
        params = dict(model.named_parameters())
        self.shapes = tuple(tuple(params[n].shape) for n in self.names)
        self.factored = tuple(n for n in self.names if factorable(model, n))
        self.example_ids = example_ids.cpu()
        layout = FirstEpochGrads(self.example_ids, torch.empty(0), tuple(self.names), self.shapes, self.factored)
        self.widths = layout.widths()
        check_first_epoch_store(len(example_ids), sum(self.widths), layers)  # before allocating
        self.grads = torch.zeros(len(example_ids), sum(self.widths))  # (N, P_stored)
        self.recorded = torch.zeros(len(example_ids), dtype=torch.bool)
        self.seconds = 0.0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor) -> None:
        positions = positions.cpu()
        new = ~self.recorded[positions]
        if not bool(new.any()):
            return
        start = time.perf_counter()
        dense_names = [n for n in self.names if n not in self.factored]
        parts = {}
        if dense_names:  # the whole batch: its BN statistics
            dense = per_example_grads(model, x, y, dense_names)
            sizes = [math.prod(s) for n, s in zip(self.names, self.shapes) if n not in self.factored]
            parts |= dict(zip(dense_names, dense.split(sizes, dim=1)))
        if self.factored:
            factors = linear_factors(model, x, y, self.factored)
            sizes = [w for n, w in zip(self.names, self.widths) if n in self.factored]
            parts |= dict(zip(self.factored, factors.split(sizes, dim=1)))
        g = torch.cat([parts[n] for n in self.names], dim=1)
        self.grads[positions[new]] = g[new.to(g.device)].float().cpu()
        self.recorded[positions[new]] = True
        self.seconds += time.perf_counter() - start

    def result(self) -> FirstEpochGrads:
        if not bool(self.recorded.all()):
            raise RuntimeError(f"{int((~self.recorded).sum())} examples have no first-epoch gradient; "
                               "the recorder must see a full epoch of fit")
        return FirstEpochGrads(self.example_ids.clone(), self.grads.clone(), tuple(self.names), self.shapes,
                               self.factored)


def save_first_epoch_grads(grads: FirstEpochGrads, path: Path) -> None:
    payload = {"example_ids": grads.example_ids, "grads": grads.grads, "names": list(grads.names),
               "shapes": [list(s) for s in grads.shapes], "factored": list(grads.factored)}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_first_epoch_grads(path: Path) -> FirstEpochGrads:
    path = require(path, "train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        grads = FirstEpochGrads(payload["example_ids"], payload["grads"], tuple(payload["names"]),
                                tuple(tuple(s) for s in payload["shapes"]), tuple(payload.get("factored", ())))
    except Exception as exc:
        raise RuntimeError(f"{path} is unreadable ({type(exc).__name__}); rerun `dvc repro --force train`") from None
    return grads
