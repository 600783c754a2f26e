"""M independent models trained as one: grouped kernels instead of a Python loop.

``stack_models`` turns M same-architecture models into one module whose
activations are laid out (B, M*C, ...) -- model m owns channels
[m*C, (m+1)*C) -- by rewriting every layer that mixes channels:

- ``Conv2d(cin, cout, groups=g)`` -> ``Conv2d(M*cin, M*cout, groups=M*g)``;
- ``BatchNorm{1,2}d(c)`` -> ``BatchNorm(M*c)`` (per-channel, so per model);
- ``Linear(i, o)`` -> ``StackedLinear``: one batched matmul over M weights.

Channel-wise layers (ReLU, pooling, flatten, residual adds) need no change:
flattening (B, M*C, H, W) keeps model m's features contiguous. The models
stay independent: model m's input channels are its own examples, and the
loss is the sum of per-model losses, so each model's gradient is its own.
SGD with momentum and weight decay is elementwise, hence per model too.
In exact arithmetic training the stack equals training each model alone;
in floating point the kernels differ, so results agree to rounding.

``fit_stacked`` is ``loop.fit`` for a stack, each model on its own subset in
its own seeded order (the same draws ``fit`` makes), so model m of a stack
is model m of the one-at-a-time loop. Why: on a small CPU a small CNN's
kernels are too small to keep the cores busy; M models per kernel are not.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit
from . import augment
from .loop import batch_inputs, lr_schedule, normalized_batches, sgd, to_device
from .recipe import TrainConfig, autocast

CHANNELWISE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Sequential)


class StackingError(ValueError):
    """The model has a layer this module cannot stack; train it one model at a time."""


class StackedLinear(nn.Module):
    """M ``nn.Linear(i, o)`` on (B, M*i) -> (B, M*o) in one batched matmul."""

    def __init__(self, linears: Sequence[nn.Linear]):
        super().__init__()
        self.num_models, self.out_features = len(linears), linears[0].out_features
        self.in_features = linears[0].in_features
        self.weight = nn.Parameter(torch.stack([lin.weight.detach() for lin in linears]).clone())  # (M, o, i)
        self.bias = nn.Parameter(torch.stack([lin.bias.detach() for lin in linears]).clone())  # (M, o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        x = x.reshape(batch, self.num_models, self.in_features).transpose(0, 1)  # (M, B, i)
        y = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))  # (M, B, o)
        return y.transpose(0, 1).reshape(batch, self.num_models * self.out_features)


def _stack_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    c, m = convs[0], len(convs)
    out = nn.Conv2d(m * c.in_channels, m * c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                    m * c.groups, c.bias is not None, c.padding_mode)
    with torch.no_grad():
        out.weight.copy_(torch.cat([conv.weight for conv in convs]))  # (M*cout, cin/g, k, k)
        if c.bias is not None:
            out.bias.copy_(torch.cat([conv.bias for conv in convs]))
    return out


def _stack_batchnorm(norms: Sequence[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    n = norms[0]
    out = type(n)(len(norms) * n.num_features, n.eps, n.momentum, n.affine, n.track_running_stats)
    with torch.no_grad():
        for name, tensor in list(out.named_parameters()) + list(out.named_buffers()):
            if name != "num_batches_tracked":
                tensor.copy_(torch.cat([getattr(norm, name) for norm in norms]))
    return out


STACKERS = {nn.Conv2d: _stack_conv, nn.BatchNorm2d: _stack_batchnorm, nn.BatchNorm1d: _stack_batchnorm,
            nn.Linear: StackedLinear}


def stack_models(models: Sequence[nn.Module]) -> nn.Module:
    """One module computing all ``models`` side by side: input (B, M*C, H, W), output (B, M*classes)."""
    template = copy.deepcopy(models[0])
    modules = [dict(model.named_modules()) for model in models]
    for name, module in list(template.named_modules()):
        if type(module) in STACKERS:
            _replace(template, name, STACKERS[type(module)]([mods[name] for mods in modules]))
        elif next(module.children(), None) is None and (
                not isinstance(module, CHANNELWISE) or any(True for _ in module.parameters(recurse=False))):
            raise StackingError(f"cannot stack layer {name!r} ({type(module).__name__}); "
                                f"train this model one at a time (memorize.stack: 1)")
    template.num_models = len(models)
    return template


def unstack_into(stacked: nn.Module, models: Sequence[nn.Module]) -> None:
    """Copy model m's slice of every stacked tensor back into ``models[m]``."""
    state = stacked.state_dict()
    for m, model in enumerate(models):
        own = model.state_dict()
        for name, tensor in own.items():
            if name.endswith("num_batches_tracked"):
                tensor.copy_(state[name])
            elif tensor.dim() > 0:
                size = tensor.shape[0]
                source = state[name]
                piece = source[m] if source.dim() == tensor.dim() + 1 else source[m * size:(m + 1) * size]
                tensor.copy_(piece.reshape(tensor.shape))


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def stacked_logits(stacked: nn.Module, x: torch.Tensor, num_models: int) -> torch.Tensor:
    """(B, M, C, H, W) per-model inputs -> (B, M, classes) per-model logits."""
    batch = x.shape[0]
    return stacked(x.reshape(batch, -1, *x.shape[3:])).reshape(batch, num_models, -1)


def fit_stacked(
    stacked: nn.Module,
    data: ImageSplit,
    subsets: Sequence[torch.Tensor],
    info: DatasetInfo,
    recipe: TrainConfig,
    generators: Sequence[torch.Generator],
    device: torch.device,
    inputs: torch.Tensor | None = None,
) -> None:
    """``loop.fit`` for M models at once: model m trains on ``data.take(subsets[m])`` in ``generators[m]``'s order.

    inputs: ``loop.normalized_inputs(data)``, to skip normalizing every batch.

    The subsets must have equal sizes (exact memorization's do: round(p*N)),
    so every model takes the same number of steps of the same batch size.
    """
    num_models = len(subsets)
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1 or len(generators) != num_models:
        raise ValueError(f"fit_stacked needs one generator and one equal-size subset per model, got sizes {sizes}")
    size = sizes.pop()
    data = to_device(data, device)  # indexed by device positions below
    subsets = torch.stack([s.to(device) for s in subsets])  # (M, n) positions into data
    stacked.to(device).train()
    optimizer = sgd(stacked, recipe.lr, recipe.momentum, recipe.weight_decay)
    schedule = lr_schedule(optimizer, recipe)
    for _ in range(recipe.epochs):
        # the draw loop.fit makes per epoch, per model: randperm over its subset
        orders = torch.stack([torch.randperm(size, generator=g) for g in generators]).to(device)  # (M, n)
        epoch_positions = torch.gather(subsets, 1, orders)  # (M, n)
        for positions in epoch_positions.split(recipe.batch_size, dim=1):  # (M, B)
            positions = positions.T  # (B, M)
            flat = positions.reshape(-1)
            x = inputs[flat] if inputs is not None else batch_inputs(data, flat, info, device)  # (B*M, C, H, W)
            if recipe.augment.on:  # model m's crops and flips from its own generator, as loop.fit draws them
                x = augment.apply(x, _stacked_draws(recipe.augment, generators, len(positions)),
                                  recipe.augment.crop_padding, info)
            y = data.labels[positions]  # (B, M)
            with autocast(recipe.precision, device):
                logits = stacked_logits(stacked, x.reshape(*positions.shape, *x.shape[1:]), num_models)  # (B, M, K)
            logits = logits.float()
            # sum over models of each model's mean CE: model m's gradient is its own loss's
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum") / len(y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()


def _stacked_draws(recipe_augment, generators: Sequence[torch.Generator], batch: int):
    """Each model's batch draws (augment.draw from its generator) laid out as x's rows: (B*M,) each, row b*M+m."""
    per_model = [augment.draw(recipe_augment, batch, g) for g in generators]  # M x 3 tensors of (B,)
    return tuple(torch.stack([d[i] for d in per_model], dim=1).reshape(-1) for i in range(3))


@torch.no_grad()
def predict_proba_stacked(stacked: nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device,
                          num_models: int, batch_size: int = 512, precision: str = "fp32",
                          inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Every model's softmax on every example of ``data``: (M, N, classes) float32 on the CPU."""
    stacked.to(device).eval()
    out = []
    for _, x, _ in normalized_batches(data, info, batch_size, device, inputs=inputs):  # x (B, C, H, W)
        with autocast(precision, device):
            logits = stacked(x.repeat(1, num_models, 1, 1)).reshape(len(x), num_models, -1)  # (B, M, K)
        out.append(F.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out).transpose(0, 1) if out else torch.empty(num_models, 0, info.num_classes)
