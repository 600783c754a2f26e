"""Entanglement (docs/methods.md §3): the ES formula, centroid distances, entanglement groups, errors."""
import numpy as np
import pandas as pd
import pytest
import torch

from memunlearn.entanglement import (binned_entanglement, centroid_distances, distance_bins, embed_split,
                                     entanglement_score, split_entanglement)
from memunlearn.models import build_model
from memunlearn.partition import (PartitionConfig, ScoreSources, choose_forget_set, describe_forget_set,
                                  entanglement_kinds_es, lookup_score)
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit

CPU = torch.device("cpu")


def direct_es(r: np.ndarray, f: np.ndarray) -> float:
    """ES written out element by element, as in docs/methods.md §3."""
    mu_r = [sum(x[d] for x in r) / len(r) for d in range(r.shape[1])]
    mu_f = [sum(x[d] for x in f) / len(f) for d in range(f.shape[1])]
    mu = [(a + b) / 2 for a, b in zip(mu_r, mu_f)]
    sq = lambda a, b: sum((ai - bi) ** 2 for ai, bi in zip(a, b))  # noqa: E731
    within = sum(sq(x, mu_r) for x in r) / len(r) + sum(sq(x, mu_f) for x in f) / len(f)
    return within / (0.5 * (sq(mu_r, mu) + sq(mu_f, mu)))


def test_es_on_hand_made_embeddings():
    r = np.array([[0.0, 0.0], [2.0, 0.0]])  # mu_R = (1, 0), mean squared spread 1
    f = np.array([[10.0, 0.0], [10.0, 2.0]])  # mu_F = (10, 1), mean squared spread 1
    # mu = (5.5, 0.5): ||mu_R - mu||^2 = ||mu_F - mu||^2 = 4.5^2 + 0.5^2 = 20.5
    assert entanglement_score(r, f) == pytest.approx(2 / 20.5)
    rng = np.random.default_rng(0)
    r, f = rng.normal(size=(30, 5)), rng.normal(0.5, 2.0, size=(7, 5))
    assert entanglement_score(r, f) == pytest.approx(direct_es(r, f), rel=1e-12)
    assert entanglement_score(torch.from_numpy(r).float(), torch.from_numpy(f).float()) == pytest.approx(
        direct_es(r, f), rel=1e-5)  # torch tensors too


def test_es_is_symmetric_and_invariant_to_translation_and_scale():
    rng = np.random.default_rng(1)
    r, f = rng.normal(size=(40, 6)), rng.normal(1.0, 1.0, size=(10, 6))
    es = entanglement_score(r, f)
    assert entanglement_score(f, r) == pytest.approx(es)
    assert entanglement_score(3 * r + 7, 3 * f + 7) == pytest.approx(es)


def test_separated_clusters_give_small_es_and_overlapping_ones_large():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(200, 8))
    far = rng.normal(size=(50, 8)) + 20 * np.eye(8)[0]
    near = rng.normal(size=(50, 8)) + 0.1 * np.eye(8)[0]
    assert entanglement_score(r, far) < 0.5  # within spread ~16, between ||20 e1||^2 / 4 = 100
    assert entanglement_score(r, near) > 50
    assert entanglement_score(r, r[:50]) > entanglement_score(r, near) / 10  # a subset of R: fully entangled


def test_es_of_coinciding_means_is_infinite_and_empty_sets_are_errors():
    r = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert entanglement_score(r, r[::-1].copy()) == float("inf")
    with pytest.raises(ValueError, match=r"forget embeddings must be a non-empty \(N, D\) array"):
        entanglement_score(r, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="non-empty proper subset"):
        split_entanglement(r, [5, 6], [5, 6])


def test_centroid_distances_on_hand_made_embeddings():
    emb = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [1.0, -3.0]])  # centroid (1, 0)
    distances = centroid_distances(emb, [10, 11, 12, 13])
    assert distances.name == "centroid_distance"
    assert distances.to_dict() == pytest.approx({10: 1.0, 11: 1.0, 12: 3.0, 13: 3.0})
    with pytest.raises(ValueError, match="3 example_ids for 4 embeddings"):
        centroid_distances(emb, [1, 2, 3])


@pytest.fixture(scope="module")
def embedded(synthetic):
    """(train, embeddings of a briefly trained small CNN, centroid distances)."""
    train, _, info, _ = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    recipe = TrainConfig(model="small_cnn", epochs=8, batch_size=32, lr=0.05, weight_decay=0.0, device="cpu")
    fit(model, train, info, recipe, generator(0, "order"), CPU)
    emb = embed_split(model, train, info, CPU)
    return train, emb, centroid_distances(emb, train.example_ids.numpy())


def _sources(ids, embeddings=None, labels=None):
    exact = pd.DataFrame({"example_id": ids, "mem": 0.0, "mem_prob": 0.0})
    proxies = pd.DataFrame({"example_id": ids, "confidence": np.linspace(0, 1, len(ids))})
    labels = pd.Series(np.zeros(len(ids), dtype=int) if labels is None else labels, index=ids)
    return ScoreSources(exact, proxies, labels, embeddings)


def core_and_satellite(seed=0):
    """Known geometry: a dense core of 900 points at the origin and a satellite cluster of 100 points 12 units
    out along e1. The satellite sits in the outermost distance bins and is far from the rest (small ES); the
    points nearest the centroid sit inside the core, indistinguishable from the rest (large ES). So ranking by
    distance would call the satellite "most entangled": the opposite of its measured ES."""
    rng = np.random.default_rng(seed)
    core = rng.normal(size=(900, 6))
    satellite = rng.normal(size=(100, 6)) * 0.5 + 12 * np.eye(6)[0]
    return np.concatenate([core, satellite]), np.arange(1000)


def test_distance_bins_measure_es_and_it_is_not_monotone_in_distance():
    emb, ids = core_and_satellite()
    bins = distance_bins(emb, ids, bins=15)
    assert bins["size"].sum() == 1000 and bins["bin"].is_monotonic_increasing
    satellite_bins = bins[bins["low"] > 8]
    assert len(satellite_bins) and satellite_bins["es"].max() < bins["es"].max() / 10
    assert bins["es"].idxmax() != bins.index[-1]  # the most entangled bin is not the farthest one
    score = binned_entanglement(emb, ids, bins=15)
    assert score.loc[950] == pytest.approx(bins.set_index("bin")["es"].loc[bins[bins["low"] <= np.linalg.norm(
        emb[950] - emb.mean(0))]["bin"].max()])  # a satellite point carries its bin's ES


def test_entanglement_kinds_are_ordered_by_measured_es():
    emb, ids = core_and_satellite()
    sources = _sources(ids, emb)
    cfg = PartitionConfig(kind="high", size=60, group_score="entanglement", refine_score="entanglement")
    high = choose_forget_set(cfg, sources)
    low = choose_forget_set(PartitionConfig(**{**cfg.__dict__, "kind": "low"}), sources)
    assert (low["example_id"] >= 900).all()  # the least entangled set is the satellite
    assert (high["example_id"] < 900).all()  # the most entangled set lies inside the core
    es = entanglement_kinds_es(cfg, sources)
    assert es["low"] < es["mid"] < es["high"]
    assert es["high"] > 10 * es["low"]  # known geometry: far apart, not a rounding-level difference


def test_entanglement_as_refine_score_orders_the_subsets(embedded):
    train, emb, distances = embedded
    ids = train.example_ids.numpy()
    forget = choose_forget_set(PartitionConfig(kind="random", size=60, refine_score="entanglement"),
                               _sources(ids, emb, train.labels.numpy()))
    by = forget.groupby("subset")["refine_score"]
    assert by.max()["low"] <= by.min()["mid"] and by.max()["mid"] <= by.min()["high"]
    assert np.allclose(forget["refine_score"], binned_entanglement(emb, ids).loc[forget["example_id"]])


def test_a_class_is_less_entangled_with_the_rest_than_a_random_set(embedded, synthetic):
    """A trained model clusters a class apart (small ES); a random forget set overlaps R (large ES)."""
    train, emb, _ = embedded
    ids = train.example_ids.numpy()
    one_class = ids[train.labels.numpy() == 0]
    random_ids = np.random.default_rng(0).choice(ids, size=len(one_class), replace=False)
    assert split_entanglement(emb, ids, one_class) < split_entanglement(emb, ids, random_ids) / 5
    in_f = np.isin(ids, one_class)
    assert split_entanglement(emb, ids, one_class) == pytest.approx(entanglement_score(emb[~in_f], emb[in_f]))


def test_describe_reports_es_of_f_and_of_each_subset():
    emb, ids = core_and_satellite()
    sources = _sources(ids, emb)
    forget = choose_forget_set(PartitionConfig(kind="random", size=90, refine_score="centroid_distance"), sources)
    facts = describe_forget_set(forget, sources)
    assert facts["entanglement_score"] == pytest.approx(split_entanglement(emb, ids, forget["example_id"]))
    assert set(facts["subset_entanglement_score"]) == {"low", "mid", "high"}


def test_bad_score_names_are_one_line_errors():
    emb, ids = core_and_satellite()
    with pytest.raises(ValueError) as err:
        choose_forget_set(PartitionConfig(kind="high", size=30, group_score="entanglment"), _sources(ids, emb))
    assert str(err.value) == ("unknown score 'entanglment'; choose one of "
                              "['exact', 'exact_prob', 'entanglement', 'centroid_distance', 'confidence']")
    with pytest.raises(ValueError, match=r"score 'entanglement' needs the original model's embeddings") as err:
        lookup_score("entanglement", _sources(ids))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="entanglement_bins must be >= 1"):
        distance_bins(emb, ids, bins=0)
