"""The train stage's typed params: the recipe of the original model (``train``), the subset models' and the
oracle's recipes merged over it (``memorize.recipe``, ``oracle.recipe``: ``recipe_for``), and what is recorded
beside the original's training (``train_records``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..config import ConfigError, check_choice, check_positive, from_params
from ..models import model_modality

PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where bf16_supported(device), else fp32
SCHEDULES = ("step", "cosine")  # step: lr *= lr_gamma at lr_milestones | cosine: annealed to 0 over the epochs


@dataclass(frozen=True)
class Augment:
    """Per-batch image augmentation (training/augment.py), the reference's RandomCrop(32, padding=4) +
    RandomHorizontalFlip; off by default (no draws, the same code path as before)."""

    crop_padding: int = 0  # random crop of the image's size from the image zero-padded by this many pixels
    flip: bool = False  # horizontal flip with probability 1/2

    @property
    def on(self) -> bool:
        return self.crop_padding > 0 or self.flip


@dataclass(frozen=True)
class TrainConfig:
    model: str = "small_cnn"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = ()  # epochs at which lr *= lr_gamma (reference: 15, 20, 25 of 30)
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (autocast: forward passes in bf16, weights and loss in fp32) | auto
    channels_last: bool = True  # conv weights (so activations) laid out channels-last: faster on CPU and GPU
    # the reference recipes (issue 26): the schedule and augmentation; their defaults leave a run as it was
    lr_schedule: str = "step"  # step (lr_milestones, lr_gamma) | cosine (RUM's original: CosineAnnealingLR)
    augment: Augment = field(default_factory=Augment)
    # the original model trained elsewhere: a checkpoint file, a models:/ URI or a Hugging Face directory
    # (models/init.py); "" trains it. Subset models and oracles train from scratch whatever it is.
    init: str = ""

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout every training and unlearning run puts the model's 4-D weights in."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def validate(self, section: str = "train") -> None:
        model_modality(self.model)  # an image model or a language model (models/base.py)
        check_choice(self.precision, PRECISIONS, f"{section}.precision")
        check_choice(self.lr_schedule, SCHEDULES, f"{section}.lr_schedule")
        for name in ("epochs", "batch_size", "lr"):
            check_positive(getattr(self, name), f"{section}.{name}")
        if self.lr_schedule == "cosine" and self.lr_milestones:
            raise ConfigError(f"{section}.lr_milestones: a cosine schedule takes none; write [] or "
                              f"lr_schedule: step")
        if self.augment.crop_padding < 0:
            raise ConfigError(f"{section}.augment.crop_padding must be >= 0, got {self.augment.crop_padding}")
        if self.augment.on and model_modality(self.model) != "image":
            raise ConfigError(f"{section}.augment: crop and flip apply to images only; {self.model!r} is a "
                              f"{model_modality(self.model)} model: write augment: {{}}")


def bf16_supported(device: torch.device | str) -> bool:
    """Native bf16 kernels: a CUDA GPU with bf16 arithmetic, or a CPU with AVX-512 BF16 or AMX (oneDNN's)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch: no emulation argument
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":  # private probes (torch.cpu); absent ones count as unsupported
        return any(getattr(torch.cpu, probe, lambda: False)()
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``precision`` with ``auto`` made concrete for ``device``: bf16 where ``bf16_supported``, else fp32."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def resolved(recipe: TrainConfig, device: torch.device | str) -> TrainConfig:
    """``recipe`` with its precision made concrete for ``device``."""
    return dataclasses.replace(recipe, precision=resolve_precision(recipe.precision, device))


def recipe_identity(recipe: TrainConfig) -> dict:
    """The recipe's fields that determine a trained model, for content keys: all but ``device`` (the same model
    on any device) and ``init`` (subset models and oracles train from scratch whatever the original is).
    ``precision`` must be concrete (``resolved``): machines that resolve ``auto`` differently never share a
    model."""
    if recipe.precision not in ("fp32", "bf16"):
        raise ValueError(f"a model key needs a concrete train.precision (fp32 or bf16), got {recipe.precision!r}; "
                         "resolve it for the device first (training.recipe.resolved)")
    return {k: v for k, v in dataclasses.asdict(recipe).items() if k not in ("device", "init")}


# role -> the params section whose ``recipe`` mapping is merged over ``train`` (the original's recipe)
ROLES = {"original": None, "subset": "memorize", "oracle": "oracle"}
SHARED_WITH_ORIGINAL = ("model", "device")  # every role trains the original's architecture, on its device
ORIGINAL_ONLY = ("init",)  # a starting checkpoint is the original's; subset models and oracles start from scratch


def recipe_for(params: Mapping[str, Any], role: str) -> TrainConfig:
    """The recipe that trains ``role``'s models: ``train``, with the role's ``<section>.recipe`` keys merged over
    it (``memorize.recipe`` for the subset models, ``oracle.recipe`` for every retrain oracle: the oracle stage,
    the grids', LiRA's retrained copies, the ``retrain`` method). Bad keys are named by their own path."""
    if role not in ROLES:
        raise ValueError(f"no recipe role {role!r}; the roles are {', '.join(ROLES)}")
    train = dict(params.get("train") or {})
    original = from_params(TrainConfig, train, "train")
    section = ROLES[role]
    overrides = role_overrides(params, section) if section else {}
    if not overrides:
        recipe = original
    else:
        recipe = from_params(TrainConfig, {**train, **overrides}, f"{section}.recipe")
    # an original-only field (train.init, when that field exists) never reaches the models trained from scratch
    reset = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in ORIGINAL_ONLY}
    return dataclasses.replace(recipe, **reset) if section and reset else recipe


def role_overrides(params: Mapping[str, Any], section: str) -> dict:
    """``<section>.recipe`` as a mapping of TrainConfig keys: unknown keys and the keys every role shares with
    ``train`` are one-line errors naming the key."""
    block = (params.get(section) or {}).get("recipe") or {}
    where = f"{section}.recipe"
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: got {block!r}; write a mapping of train keys, e.g. {{epochs: 30}}")
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in block:
        if key not in known:
            valid = ", ".join(k for k in known if k not in SHARED_WITH_ORIGINAL)
            raise ConfigError(f"{where}.{key}: unknown key; valid keys: {valid}")
        if key in SHARED_WITH_ORIGINAL:
            raise ConfigError(f"{where}.{key}: every role trains with train.{key}; set it there")
    return dict(block)


def autocast(precision: str, device: torch.device | str):
    """bf16 autocast on ``device`` when ``precision`` resolves to bf16; otherwise a context that changes nothing."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")


ESTIMATORS = ("sign_gradient", "rademacher")  # RUM code's sign-gradient direction | Garg et al.'s Rademacher draws


@dataclass(frozen=True)
class RecordConfig:
    """Params section ``train_records``: what the train stage records beside learning events."""

    curvature: bool = True  # loss-curvature proxies, once per epoch
    curvature_estimators: tuple[str, ...] = ESTIMATORS  # sign_gradient (RUM code) | rademacher (Garg et al.)
    curvature_h: float = 0.01  # sign_gradient's step (RUM code)
    curvature_rademacher_h: float = 1e-3  # rademacher's step (Garg et al.)
    curvature_draws: int = 10  # rademacher draws per example and epoch (Garg et al.)
    curvature_batch_size: int = 256
    # first-epoch per-example gradients of these layers for first_epoch_ga (module-name prefixes; aliases head,
    # penultimate, input: training/first_epoch_grads.py says why head + penultimate by default); () = off
    first_epoch_grads: tuple[str, ...] = ("head", "penultimate")

    def validate(self) -> None:
        check_positive(self.curvature_h, "train_records.curvature_h")
        check_positive(self.curvature_rademacher_h, "train_records.curvature_rademacher_h")
        check_positive(self.curvature_draws, "train_records.curvature_draws")
        if not isinstance(self.curvature_estimators, tuple) or not self.curvature_estimators:
            raise ValueError(f"train_records.curvature_estimators must be a non-empty list of {list(ESTIMATORS)}")
        for name in self.curvature_estimators:
            check_choice(name, ESTIMATORS, "train_records.curvature_estimators")
        check_positive(self.curvature_batch_size, "train_records.curvature_batch_size")
        layers = self.first_epoch_grads
        if not isinstance(layers, tuple) or not all(isinstance(p, str) and p for p in layers):
            raise ValueError("train_records.first_epoch_grads must be a list of layer names (e.g. [input]) or [] for off")
