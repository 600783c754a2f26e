"""Each grid seed's own original (experiments/originals.py, a grid's ``originals: per_seed``): trained with the
seed-offset recipe, its own exact scores and proxies, cached by content, seed 0 read from the stages' outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from memunlearn.data import PrepareConfig
from memunlearn.io import load_table
from memunlearn.memorization.exact import Execution, ExactConfig
from memunlearn.memorization.proxies import ProxyConfig
from memunlearn.modality.image.pipeline import ImageModality
from memunlearn.experiments.originals import StageOutputs, needed_proxies, per_seed_sources, seed_original
from memunlearn.training import RecordConfig, TrainConfig

CPU = torch.device("cpu")
RECIPE = TrainConfig(model="small_cnn", epochs=1, batch_size=32, lr=0.05, lr_milestones=(), device="cpu")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed_originals")
    modality = ImageModality()
    modality.prepare(PrepareConfig(max_train=120, max_test=60, noise_fraction=0.05), folder, folder / "prepared")
    return modality, modality.load(folder / "prepared"), folder


def make(modality, data, folder, seed, cache):
    stage = StageOutputs(folder / "train", folder / "scores.parquet", folder / "proxies.parquet")
    return seed_original(modality, data, seed, RECIPE, RecordConfig(curvature=False, first_epoch_grads=()),
                         RECIPE, ExactConfig(num_models=2), ProxyConfig(names=("confidence",)), stage, cache,
                         Execution(), CPU), stage


def test_each_seed_trains_its_own_original_and_scores_once(prepared):
    modality, data, folder = prepared
    cache = folder / "cache"
    (one, facts), stage = make(modality, data, folder, 1, cache)
    assert not facts["original_cached"] and facts["original_seconds"] > 0
    assert {"model.pt", "scores.parquet", "proxies.parquet", "learning_events.parquet"} <= {
        p.name for p in one.iterdir()}
    (again, facts_again), _ = make(modality, data, folder, 1, cache)
    assert again == one and facts_again == {**facts, "original_cached": True}  # a rerun trains nothing
    assert not (cache / "staging-seed_original-1").exists()
    (two, _), _ = make(modality, data, folder, 2, cache)
    assert two != one
    weights = [modality.load_model(f / "model.pt", "train")[0].state_dict() for f in (one, two)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0] if weights[0][k].is_floating_point())
    scores = [load_table(f / "scores.parquet", "grids").set_index("example_id")["mem_prob"] for f in (one, two)]
    both = scores[0].notna() & scores[1].notna()
    assert (scores[0][both] - scores[1][both]).abs().max() > 0.05  # other subset models, other original: other scores
    assert len(list((cache / "subset_models").iterdir())) == 2  # one store key per memorize seed, beside the entries
    assert make(modality, data, folder, 0, cache)[0] == (stage.train, {"original_seconds": 0.0,
                                                                      "original_cached": True})


def test_per_seed_sources_read_each_seeds_own_scores(prepared):
    modality, data, folder = prepared
    cache = folder / "cache"
    built = per_seed_sources(modality, data, lambda seed: make(modality, data, folder, seed, cache)[0],
                             make(modality, data, folder, 1, cache)[1], RECIPE, CPU)
    original, sources = built(1)
    assert built(1)[0] is original  # built once per seed
    folder_1 = make(modality, data, folder, 1, cache)[0][0]
    expected = load_table(folder_1 / "proxies.parquet", "grids")
    assert np.allclose(sources.proxies["confidence"], expected["confidence"])
    assert set(sources.planted) == set(data.planted) and sources.embeddings.shape[0] == len(data.train)
    assert original.context.seed == 0 and original.facts["original_cached"]


def test_only_the_proxies_a_grid_reads_are_computed():
    assert needed_proxies({"exact_prob", "confidence", "entanglement", "", "loss_curvature"}) == (
        "confidence", "loss_curvature")
