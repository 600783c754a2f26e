"""First-epoch gradient ascent for a language model (seed 003; docs/methods.md §5), calibrated.

θ_L ← θ_L + η·d, d = Σ_{i∈F} g_i (first epoch, training/lm_grads.py), over
the layer set L (default: the token embedding alone, the paper's finding),
one step at a time, as unlearning/first_epoch_ga.py does for images: stop
once F's score reaches the goal; a step landing more than ``tolerance`` past
it is reverted and η halved; η = step_size·‖θ_L‖/‖d‖. Score (higher = more
forgotten): ``loss`` = F's mean sequence loss, ``accuracy`` = −F's
next-token accuracy. Goals (``calibration``):
- ``validation`` (the paper): the original model's score on validation data;
- ``value``: ``goal`` as given, e.g. the retrain oracle's forget score in
  a study (the validation level need not be where an oracle puts F: a
  canary's template is shared by every canary, a corpus chunk's text is not).
Not yet an entry of the unlearning ``METHODS`` registry: that contract is
image-shaped (ImageSplit forget/retain, DatasetInfo in the context).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ConfigError, check_choice, check_positive
from ..data.text import TextSplit
from ..training.lm import score_sequences
from ..training.lm_grads import EMBEDDING_LAYER, LMFirstEpochGrads, layer_parameters

TARGETS = ("loss", "accuracy")
CALIBRATIONS = ("validation", "value")


@dataclass(frozen=True)
class LMFirstEpochGAConfig:
    step_size: float = 0.01  # each step moves θ_L by this fraction of its norm
    max_steps: int = 200
    target: str = "accuracy"  # as unlearning/first_epoch_ga.py (F's next-token accuracy), or "loss"
    calibration: str = "validation"
    goal: float = 0.0  # calibration: value; in the target's units (loss nats, or token accuracy)
    tolerance: float = 0.05  # nats / accuracy points past the goal a step may land
    max_shrinks: int = 12
    layers: tuple[str, ...] = (EMBEDDING_LAYER,)  # must have been recorded

    def validate(self) -> None:
        for name in ("step_size", "max_steps", "max_shrinks"):
            check_positive(getattr(self, name), f"methods.lm_first_epoch_ga.{name}")
        check_choice(self.target, TARGETS, "methods.lm_first_epoch_ga.target")
        check_choice(self.calibration, CALIBRATIONS, "methods.lm_first_epoch_ga.calibration")
        if self.tolerance < 0:
            raise ConfigError(f"methods.lm_first_epoch_ga.tolerance must be >= 0, got {self.tolerance}")
        if not self.layers:
            raise ConfigError("methods.lm_first_epoch_ga.layers is empty; name a layer set, e.g. [embedding]")


@dataclass
class LMAscentTrace:
    goal: float  # higher = more forgotten: loss, or -token accuracy
    scores: list[float] = field(default_factory=list)  # F's score before, then after each accepted step
    etas: list[float] = field(default_factory=list)
    shrinks: int = 0
    reached: bool = False


def forgetting_score(model: nn.Module, data: TextSplit, target: str, pad_id: int) -> float:
    s = score_sequences(model, data, pad_id)
    if target == "loss":
        return float(s["loss"].mean())
    return -float(s["correct"].sum()) / max(float(s["tokens"].sum()), 1.0)


def lm_first_epoch_ga(model: nn.Module, grads: LMFirstEpochGrads, forget: TextSplit, validation: TextSplit,
                      cfg: LMFirstEpochGAConfig, pad_id: int) -> tuple[nn.Module, LMAscentTrace]:
    """Ascend θ_L along Σ_{i∈F} g_i until F's score reaches the goal; ``model`` is changed in place."""
    cfg.validate()
    if len(forget) == 0:
        raise ValueError("lm_first_epoch_ga: the forget set is empty; choose at least one sequence")
    stored = grads.summed(forget.example_ids)
    names = layer_parameters(model, cfg.layers)
    missing = [n for n in names if n not in stored]
    if missing:
        raise ConfigError(f"methods.lm_first_epoch_ga.layers {list(cfg.layers)}: {missing[0]} was not recorded; "
                          "record that layer set while training (LMFirstEpochGradRecorder layers)")
    params = dict(model.named_parameters())
    layers, d = {n: params[n] for n in names}, {n: stored[n] for n in names}

    def score(data: TextSplit) -> float:
        return forgetting_score(model, data, cfg.target, pad_id)

    sign = 1.0 if cfg.target == "loss" else -1.0
    goal = score(validation) if cfg.calibration == "validation" else sign * cfg.goal
    trace = LMAscentTrace(goal=goal, scores=[score(forget)])
    d_norm = _norm(d.values())
    if d_norm == 0:
        return model, trace
    eta = cfg.step_size * _norm(layers.values()) / d_norm
    with torch.no_grad():
        while trace.scores[-1] < goal and len(trace.etas) < cfg.max_steps:
            saved = {n: p.detach().clone() for n, p in layers.items()}
            for n, p in layers.items():
                p.add_(d[n], alpha=eta)  # ascent: +η Σ g_i
            new = score(forget)
            if new > goal + cfg.tolerance:  # overshoot: revert exactly, halve η
                for n, p in layers.items():
                    p.copy_(saved[n])
                trace.shrinks += 1
                if trace.shrinks > cfg.max_shrinks:
                    break
                eta /= 2
                continue
            trace.scores.append(new)
            trace.etas.append(eta)
    trace.reached = trace.scores[-1] >= goal
    return model, trace


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.detach().double() ** 2).sum() for t in tensors)))
