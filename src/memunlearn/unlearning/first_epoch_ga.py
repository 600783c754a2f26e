"""``first_epoch_ga``: calibrated ascent along stored first-epoch gradients (docs/methods.md §5).

θ_L ← θ_L + η·d,  d = Σ_{i∈F} g_i(first epoch), over the stored layers L only
(train_records.first_epoch_grads: by default the head and penultimate layer,
where per-example gradients are example-specific; see
training/first_epoch_grads.py; ``layers`` picks some of the stored ones, the
the layer ablation), one step at a time, until the forget set's
score (accuracy, or loss: ``target``) reaches the calibration goal:

- ``calibration: validation`` (default; the paper's rule, "A More Practical
  Approach to Machine Unlearning": stop once the forget set reaches the level
  the model has on unseen data): the goal is the original model's score on the
  validation split (UnlearnContext.heldout; never the test set).
- ``calibration: gap``: the goal is the retain set's current score plus the
  original model's validation-vs-retain gap, re-measured after every step: F
  ends as far from R as unseen data was, however much the ascent moved R.

Neither tracks the retrain oracle per forget set: an oracle keeps a
low-memorization F near retain level (its examples generalize) and drops a
mislabeled F far below validation level, while both goals aim every F at one
aggregate level. A step that would overshoot (forget accuracy more than
``tolerance`` below the goal, at least one example's worth; or forget loss
more than ``tolerance`` nats above it) is reverted and η halved.
η = step_size·‖θ_L‖/‖d‖: each step moves the stored layers by a fixed
fraction of their norm, whatever the size of F.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import check_choice, check_positive
from ..data.splits import DatasetInfo, ImageSplit
from ..training.first_epoch_grads import DEFAULT_LAYERS, select_parameters
from ..training.loop import accuracy, predict_proba, true_class_prob
from .base import register_method

# a language model's first-epoch ascent (sparse token-embedding rows, per-token loss): the text modality's code
LANGUAGE_MODEL_ASCENT = f"{__package__.rpartition('.')[0]}.modality.text.lm_first_epoch_ga"

TARGETS = ("accuracy", "loss")
CALIBRATIONS = ("validation", "gap")
# the gradient source the ascent reads (language models: all three; images: first_epoch): each sequence's gradient
# the first time it is trained on; its gradients summed over every step of every epoch (the paper's multi-epoch
# control); Σ g_i at the final parameters (nothing stored ahead)
FIRST_EPOCH, ALL_EPOCHS, LAST_EPOCH = "first_epoch", "all_epochs", "last_epoch"
GRADIENTS = (FIRST_EPOCH, ALL_EPOCHS, LAST_EPOCH)
STORED = (FIRST_EPOCH, ALL_EPOCHS)  # recorded while the original trains
NO_GRADS = ("first_epoch_ga needs the stored first-epoch gradients; enable train_records.first_epoch_grads "
            "and rerun the train stage")


@dataclass(frozen=True)
class FirstEpochGAConfig:
    step_size: float = 0.01  # each step moves the stored layers by this fraction of their norm
    max_steps: int = 100  # accepted steps at most (the target may be out of reach)
    target: str = "accuracy"  # accuracy | loss: what is calibrated
    calibration: str = "validation"  # validation (paper) | gap (retain level + original validation-retain gap)
    tolerance: float = 0.02  # how far past the target a step may land (accuracy points / nats)
    max_shrinks: int = 12  # η halvings after overshooting steps before giving up
    batch_size: int = 1024  # evaluation batches
    layers: tuple[str, ...] = DEFAULT_LAYERS  # ascend along these stored layers (aliases as train_records.
    #                                           first_epoch_grads: head, penultimate, input, or module names);
    #                                           () = every stored layer
    gradients: str = FIRST_EPOCH  # first_epoch (stored while training) | all_epochs, last_epoch (language models
    #                               only: summed over every epoch while training, or taken at the final parameters
    #                               over F; first-epoch gradient ascent's ablations)

    def validate(self) -> None:
        for name in ("step_size", "max_steps", "max_shrinks", "batch_size"):
            check_positive(getattr(self, name), f"methods.first_epoch_ga.{name}")
        check_choice(self.target, TARGETS, "methods.first_epoch_ga.target")
        check_choice(self.calibration, CALIBRATIONS, "methods.first_epoch_ga.calibration")
        check_choice(self.gradients, GRADIENTS, "methods.first_epoch_ga.gradients")
        if self.tolerance < 0:
            raise ValueError(f"methods.first_epoch_ga.tolerance must be >= 0, got {self.tolerance}")


@dataclass
class AscentTrace:
    goal: float  # forgetting score to reach (higher = more forgotten: -accuracy, or loss); gap: the latest goal
    scores: list[float] = field(default_factory=list)  # forget set's score before each accepted step, then after it
    etas: list[float] = field(default_factory=list)  # η of each accepted step
    shrinks: int = 0
    reached: bool = False


def forgetting_score(model: nn.Module, data: ImageSplit, target: str, info: DatasetInfo, device,
                     batch_size: int) -> float:
    """Higher = more forgotten: -accuracy, or mean CE (eval mode)."""
    probs = predict_proba(model, data, info, device, batch_size)  # (N, C)
    if target == "accuracy":
        return -accuracy(probs, data.labels)
    return float(-true_class_prob(probs, data.labels).clamp_min(1e-12).log().mean())


def ascend(model: nn.Module, direction: dict[str, torch.Tensor], forget: ImageSplit, heldout: ImageSplit,
           cfg: FirstEpochGAConfig, info: DatasetInfo, device,
           retain: ImageSplit | None = None) -> tuple[nn.Module, AscentTrace]:
    """Step θ_L += η·d until F's score reaches the calibration goal, never past it by more than the band.
    ``retain`` is needed for ``calibration: gap``."""
    params = dict(model.to(device).named_parameters())
    missing = sorted(set(direction) - set(params))
    if missing:
        raise ValueError(f"first_epoch_ga: stored gradients name {missing[0]}, not a parameter of this model; "
                         "rerun the train stage")
    layers = {n: params[n] for n in direction}
    d = {n: v.to(device, layers[n].dtype) for n, v in direction.items()}
    def score(data: ImageSplit) -> float:
        return forgetting_score(model, data, cfg.target, info, device, cfg.batch_size)

    if cfg.calibration == "gap":
        if retain is None or len(retain) == 0:
            raise ValueError("first_epoch_ga: calibration 'gap' needs the retain set")
        offset = score(heldout) - score(retain)  # the original model's validation-vs-retain gap
        goal = lambda: score(retain) + offset  # noqa: E731
    else:
        level = score(heldout)
        goal = lambda: level  # noqa: E731
    trace = AscentTrace(goal=goal(), scores=[score(forget)])
    band = max(cfg.tolerance, 1 / max(len(forget), 1)) if cfg.target == "accuracy" else cfg.tolerance
    calibrated_ascent(layers, d, lambda: score(forget), goal, band, cfg.step_size, cfg.max_steps, cfg.max_shrinks,
                      trace)
    return model, trace


def calibrated_ascent(layers: dict[str, torch.Tensor], d: dict[str, torch.Tensor], forget_score: Callable[[], float],
                      goal: Callable[[], float], band: float, step_size: float, max_steps: int, max_shrinks: int,
                      trace: AscentTrace) -> None:
    """θ_L += η·d one step at a time (η = step_size·‖θ_L‖/‖d‖) until ``forget_score()`` reaches ``goal()``; a
    step landing more than ``band`` past the goal is reverted exactly and η halved. Appends to ``trace``, whose
    ``scores`` start with the score before any step. Shared by the image and the language-model method."""
    d_norm = _norm(d.values())
    if d_norm == 0:
        return
    eta = step_size * _norm(layers.values()) / d_norm
    with torch.no_grad():
        while trace.scores[-1] < trace.goal and len(trace.etas) < max_steps:
            saved = {n: p.detach().clone() for n, p in layers.items()}
            for n, p in layers.items():
                p.add_(d[n], alpha=eta)  # ascent: +η Σ g_i
            new, now = forget_score(), goal()
            if new > now + band:  # overshoot: revert exactly, halve η
                for n, p in layers.items():
                    p.copy_(saved[n])
                trace.shrinks += 1
                if trace.shrinks > max_shrinks:
                    break
                eta /= 2
                continue
            trace.scores.append(new)
            trace.etas.append(eta)
            trace.goal = now
    trace.reached = trace.scores[-1] >= trace.goal


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.detach().double() ** 2).sum() for t in tensors)))


@register_method("first_epoch_ga", FirstEpochGAConfig,
                 "ascend along stored first-epoch gradients of F until F looks like held-out data")
def first_epoch_ga(model, forget, retain, cfg: FirstEpochGAConfig, ctx):
    language_model = hasattr(ctx.info, "pad_id")  # a TextInfo: lm_first_epoch_ga.py
    if ctx.first_epoch_grads is None and not (language_model and cfg.gradients != FIRST_EPOCH):
        raise ValueError(NO_GRADS)  # a language model's other sources: lm_first_epoch_ga names what is missing
    if ctx.heldout is None:
        raise ValueError("first_epoch_ga needs held-out data (UnlearnContext.heldout: the validation split); set "
                         "data.validation_fraction > 0 and rerun `dvc repro prepare`")
    if language_model:
        lm = importlib.import_module(LANGUAGE_MODEL_ASCENT)  # by name: no image stage's dep (the text folder is)
        model, _ = lm.lm_first_epoch_ga(model.to(ctx.device), ctx.stored_grads(cfg.gradients), forget, ctx.heldout,
                                        lm.from_image_config(cfg), ctx.info.pad_id)
        return model
    if cfg.gradients != FIRST_EPOCH:
        raise ValueError(f"methods.first_epoch_ga.gradients: {cfg.gradients!r} is implemented for language models "
                         "only; set gradients: first_epoch for an image model")
    direction = ctx.first_epoch_grads.summed(forget.example_ids)  # Σ_{i∈F} g_i per stored layer
    if cfg.layers:
        chosen = select_parameters(model, cfg.layers)
        missing = [n for n in chosen if n not in direction]
        if missing:
            raise ValueError(f"methods.first_epoch_ga.layers {list(cfg.layers)}: {missing} were not recorded; add "
                             "them to train_records.first_epoch_grads and rerun the train stage")
        direction = {n: direction[n] for n in chosen}
    model, _ = ascend(model, direction, forget, ctx.heldout, cfg, ctx.info, ctx.device, retain)
    return model
