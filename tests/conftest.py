"""Shared fixtures: a tiny synthetic image dataset with planted label noise.

Each class is a random 8x8 prototype plus pixel noise, so clean examples are
easy and generalize, while a flipped label can only be fit by memorizing it.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from memunlearn.data import DatasetInfo, ImageSplit, flip_labels
from memunlearn.data.splits import channel_stats
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import (CurvatureRecorder, FirstEpochGradRecorder, FirstEpochGrads, LearningEventRecorder,
                                 RecordConfig, TrainConfig, fit)

from e2e_project import Reproduced, reproduce_tiny_project  # tests/ is on sys.path under pytest (no __init__.py)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Tiny models: a second torch thread only adds synchronization (measured: the unit suite runs several
# times faster with one), and one thread keeps CPU results bit-reproducible. Stages read MEMUNLEARN_THREADS.
os.environ.setdefault("MEMUNLEARN_THREADS", "1")
torch.set_num_threads(int(os.environ["MEMUNLEARN_THREADS"]))

NUM_CLASSES = 4
IMAGE_SIZE = 8


def make_images(n: int, seed: int, prototypes: np.ndarray, first_id: int) -> ImageSplit:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    images = prototypes[labels] + rng.normal(0, 40, size=(n, 1, IMAGE_SIZE, IMAGE_SIZE))
    return ImageSplit(
        torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
        torch.arange(first_id, first_id + n),
    )


@pytest.fixture(scope="session")
def synthetic():
    """(train with 10% flipped labels, test, info, flipped ids)."""
    prototypes = np.random.default_rng(0).uniform(0, 255, size=(NUM_CLASSES, 1, IMAGE_SIZE, IMAGE_SIZE))
    clean = make_images(240, 1, prototypes, 0)
    test = make_images(120, 2, prototypes, 1000)
    train, flipped = flip_labels(clean, 0.1, NUM_CLASSES, seed=0)
    mean, std = channel_stats(train.images)
    info = DatasetInfo("synthetic", NUM_CLASSES, 1, IMAGE_SIZE, mean, std)
    return train, test, info, flipped["example_id"].to_numpy()


@pytest.fixture(scope="session")
def tiny_recipe() -> TrainConfig:
    """Enough epochs for the small CNN to memorize the flipped labels of ``synthetic``."""
    return TrainConfig(model="small_cnn", epochs=30, batch_size=32, lr=0.05, weight_decay=0.0, device="cpu")


@dataclass(frozen=True)
class Original:
    """The original model, trained once per session on all of ``synthetic``'s train split (flipped labels
    included, so it memorizes them) with every training-time record the train stage keeps."""

    model: nn.Module  # shared by every test: call ``copy()`` before training, stepping or train-mode forwards
    learning_events: LearningEventRecorder
    curvature: CurvatureRecorder
    first_epoch_grads: FirstEpochGrads  # the train stage's default layers
    history: list[dict]

    def copy(self) -> nn.Module:
        return copy.deepcopy(self.model)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def original(synthetic, tiny_recipe):
    """One ``Original`` for the whole session: build_model seed 0, ``tiny_recipe``, data order
    ``generator(0, "order")`` (the recipe the modules that trained their own used). Recording leaves
    training unchanged (tests/test_proxies.py, tests/test_unlearning_first_epoch_ga.py). A test that
    changed the shared model's weights or BatchNorm statistics fails the session at teardown."""
    train, _, info, _ = synthetic
    records = RecordConfig()
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    events = LearningEventRecorder(train.example_ids)
    curvature = CurvatureRecorder(train, info, torch.device("cpu"), records.curvature_h, records.curvature_batch_size,
                                  records.curvature_estimators, records.curvature_rademacher_h,
                                  records.curvature_draws, 0)
    first_epoch = FirstEpochGradRecorder(model, train.example_ids, records.first_epoch_grads)
    history = fit(model, train, info, tiny_recipe, generator(0, "order"), torch.device("cpu"),
                  on_batch=events, on_epoch=curvature, on_step=first_epoch)
    model.eval()
    frozen = _state(model)
    yield Original(model, events, curvature, first_epoch.result(), history)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, frozen[k])]
    assert not changed, f"a test changed the shared original model ({changed[:3]}...): use original.copy()"


@pytest.fixture(scope="session")
def reproduced_tiny_project(tmp_path_factory) -> Reproduced:
    """TINY's project (tests/e2e_project.py) after one `dvc repro` from scratch, shared by the session: the
    pipeline, grids and deployments modules each work on a copy of it (``copied_project``), never on it, and
    assert on its ``first_repro`` where they assert on a first repro."""
    # under pytest-xdist each worker has a session of its own: they share one reproduction in the folder that
    # holds their base temporary folders (this test run's own)
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    return reproduce_tiny_project(shared / "reproduced_tiny_project")


# The order in which pytest-xdist (`-n 2 --dist loadscope --no-loadscope-reorder`, pyproject.toml) hands whole
# modules to its workers: the longest first, so that the short unit modules fill the gaps at the end. The
# pipeline module, first, reproduces the shared TINY project (``reproduced_tiny_project``) while the other worker
# runs the modules that need no copy of it; the deployments and grids modules, which do, come after. The order
# within a module is kept (its tests run in order on one project).
FIRST = ["test_pipeline_e2e.py", "test_store_sharing_e2e.py", "test_dask_cluster_e2e.py", "test_deployments_e2e.py",
         "test_grids_e2e.py", "test_text_pipeline_e2e.py", "test_own_data_e2e.py", "test_requests_e2e.py", "test_requests_flow_e2e.py",
         # the slowest unit modules (minutes), then the others in name order
         "test_text.py", "test_method_fidelity.py", "test_tracking.py", "test_memorization_store.py",
         "test_memorization_engine.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: every module keeps its order
