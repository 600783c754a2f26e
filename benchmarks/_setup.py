"""What the image benchmarks share: the default run's params, data and recipe, and one training step to time.

Each benchmark runs as a script (``python benchmarks/<name>.py``), so this module is imported by its plain name.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from memunlearn.config import from_params
from memunlearn.data import PrepareConfig, prepare
from memunlearn.models import build_model
from memunlearn.training import TrainConfig, loop
from memunlearn.training.recipe import recipe_for

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def default_params() -> dict[str, Any]:
    """The repository's params.yaml, as the default run reads it."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def default_data(params: dict[str, Any], **data: Any):
    """The prepared data of ``params`` (``data`` overrides keys of its ``data`` section), from data/raw."""
    return prepare(from_params(PrepareConfig, {**params["data"], **data}, "data"), ROOT / "data/raw")


def default_recipe(params: dict[str, Any]) -> TrainConfig:
    """The original's recipe of ``params`` (``train``, as the train stage reads it) on the CPU."""
    return dataclasses.replace(recipe_for(params, "original"), device="cpu")


def training_step(data, recipe: TrainConfig, precision: str = "fp32") -> Callable[[], None]:
    """A closure running one training step (forward, backward, SGD) of a fresh channels-last model on the next
    batch of a seeded order of D, cycling; ``precision`` bf16 runs the forward pass under autocast."""
    model = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size,
                        seed=0).to(memory_format=torch.channels_last).train()
    inputs = loop.normalized_inputs(data.train, data.info, CPU, True)  # (N, C, H, W), channels-last
    optimizer = loop.sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    batches = order[:len(order) // recipe.batch_size * recipe.batch_size].reshape(-1, recipe.batch_size)  # (S, B)
    cursor = [0]

    def step() -> None:
        positions = batches[cursor[0] % len(batches)]
        cursor[0] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(inputs[positions]), data.train.labels[positions])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step
