"""First-epoch gradient ascent for a language model (docs/methods.md §5), calibrated.

θ_L ← θ_L + η·d, d = Σ_{i∈F} g_i (first epoch, modality/text/lm_grads.py), over
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
``gradients`` (the first ablation of first-epoch gradient ascent): ``first_epoch`` reads the stored
first-epoch gradients; ``all_epochs`` reads each sequence's gradients summed
over every epoch while training (the paper's multi-epoch control; a sum
and an average point the same way, and η is normalized by ‖d‖); ``last_epoch``
takes g_i at the model's final parameters (one backward per sequence of F,
nothing stored ahead), what multi-epoch gradients end at. The registered ``first_epoch_ga`` method runs
this for a language model (``from_image_config`` maps its params block).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...config import ConfigError, check_choice, check_positive
from ...data.text import TextSplit
from .lm import score_sequences
from .lm_grads import EMBEDDING_LAYER, LMFirstEpochGrads, grads_at, layer_parameters
from ...unlearning.first_epoch_ga import ALL_EPOCHS, FIRST_EPOCH, GRADIENTS, LAST_EPOCH, AscentTrace, calibrated_ascent

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
    layers: tuple[str, ...] = (EMBEDDING_LAYER,)  # must have been recorded (first_epoch)
    gradients: str = FIRST_EPOCH  # first_epoch | all_epochs (stored while training) | last_epoch (at the final
    #                               parameters, over F)

    def validate(self) -> None:
        for name in ("step_size", "max_steps", "max_shrinks"):
            check_positive(getattr(self, name), f"methods.lm_first_epoch_ga.{name}")
        check_choice(self.target, TARGETS, "methods.lm_first_epoch_ga.target")
        check_choice(self.calibration, CALIBRATIONS, "methods.lm_first_epoch_ga.calibration")
        check_choice(self.gradients, GRADIENTS, "methods.lm_first_epoch_ga.gradients")
        if self.tolerance < 0:
            raise ConfigError(f"methods.lm_first_epoch_ga.tolerance must be >= 0, got {self.tolerance}")
        if not self.layers:
            raise ConfigError("methods.lm_first_epoch_ga.layers is empty; name a layer set, e.g. [embedding]")


def from_image_config(cfg) -> LMFirstEpochGAConfig:
    """``methods.first_epoch_ga`` (unlearning/first_epoch_ga.py's config) for a language model: the same keys;
    ``layers`` from this file's aliases (embedding, head, block:<i>, all), () = the embedding."""
    if cfg.calibration != "validation":
        raise ConfigError(f"methods.first_epoch_ga.calibration: {cfg.calibration!r} is not implemented for a "
                          "language model; use validation (the paper's)")
    return LMFirstEpochGAConfig(step_size=cfg.step_size, max_steps=cfg.max_steps, target=cfg.target,
                                calibration="validation", tolerance=cfg.tolerance, max_shrinks=cfg.max_shrinks,
                                layers=tuple(cfg.layers) or (EMBEDDING_LAYER,), gradients=cfg.gradients)


def forgetting_score(model: nn.Module, data: TextSplit, target: str, pad_id: int) -> float:
    s = score_sequences(model, data, pad_id)
    if target == "loss":
        return float(s["loss"].mean())
    return -float(s["correct"].sum()) / max(float(s["tokens"].sum()), 1.0)


def lm_first_epoch_ga(model: nn.Module, grads: LMFirstEpochGrads | None, forget: TextSplit, validation: TextSplit,
                      cfg: LMFirstEpochGAConfig, pad_id: int) -> tuple[nn.Module, AscentTrace]:
    """Ascend θ_L along Σ_{i∈F} g_i until F's score reaches the goal; ``model`` is changed in place. ``grads``:
    the stored gradients of ``cfg.gradients`` (first- or all-epochs; unused, may be None, with ``last_epoch``)."""
    cfg.validate()
    if len(forget) == 0:
        raise ValueError("lm_first_epoch_ga: the forget set is empty; choose at least one sequence")
    if cfg.gradients == LAST_EPOCH:
        stored = grads_at(model, forget, pad_id, cfg.layers).summed(forget.example_ids)  # CPU, as recording
    elif grads is None and cfg.gradients == ALL_EPOCHS:
        raise ValueError("lm_first_epoch_ga: gradients: all_epochs needs each sequence's gradients summed over every "
                         "epoch, which only a text grid's originals record; list this method in a grid's methods "
                         "(e.g. ablations.methods) or set gradients: first_epoch")
    elif grads is None:
        raise ValueError("lm_first_epoch_ga: no stored first-epoch gradients; record them while training "
                         "(train_records.first_epoch_grads) or set gradients: last_epoch")
    else:
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
    trace = AscentTrace(goal=goal, scores=[score(forget)])
    calibrated_ascent(layers, d, lambda: score(forget), lambda: goal, cfg.tolerance, cfg.step_size, cfg.max_steps,
                      cfg.max_shrinks, trace)
    return model, trace
