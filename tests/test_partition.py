"""Forget sets and RUM refinement (METHODS.md §3): sizes, disjointness, ordering, errors."""
import numpy as np
import pandas as pd
import pytest

from memunlearn.partition import FORGET_KINDS, PartitionConfig, SUBSETS, make_forget_set, refine, lookup_score

N_TRAIN = 600


@pytest.fixture
def tables():
    rng = np.random.default_rng(0)
    ids = np.arange(100, 100 + N_TRAIN)
    mem = rng.uniform(-0.2, 1.0, N_TRAIN)
    mem[:5] = np.nan  # never held out
    exact = pd.DataFrame({"example_id": ids, "mem": mem, "mem_prob": mem})
    proxies = pd.DataFrame({"example_id": ids, "confidence": rng.normal(size=N_TRAIN),
                            "confidence__raw": rng.normal(size=N_TRAIN)})
    labels = pd.Series(ids % 10, index=ids)
    return exact, proxies, labels


@pytest.mark.parametrize("kind", [k for k in FORGET_KINDS.names() if k != "class"])
def test_every_kind_gives_n_distinct_training_ids(tables, kind):
    exact, proxies, labels = tables
    forget = make_forget_set(PartitionConfig(kind=kind, size=90), exact, proxies, labels)
    assert len(forget) == 90
    assert forget["example_id"].is_unique
    assert set(forget["example_id"]) <= set(labels.index)
    assert forget["subset"].value_counts().to_dict() == {"low": 30, "mid": 30, "high": 30}


def test_class_kind_takes_every_example_of_the_classes(tables):
    exact, proxies, labels = tables
    forget = make_forget_set(PartitionConfig(kind="class", size=0, classes=(3, 7)), exact, proxies, labels)
    assert set(forget["example_id"]) == set(labels.index[labels.isin([3, 7])])


def test_groups_follow_the_score(tables):
    exact, proxies, labels = tables
    mem = exact.set_index("example_id")["mem"]
    high = make_forget_set(PartitionConfig(kind="high", size=60), exact, proxies, labels)
    low = make_forget_set(PartitionConfig(kind="low", size=60), exact, proxies, labels)
    mid = make_forget_set(PartitionConfig(kind="mid", size=60), exact, proxies, labels)
    assert mem.loc[high["example_id"]].min() >= mem.dropna().nlargest(60).min()
    assert mem.loc[low["example_id"]].max() <= mem.dropna().nsmallest(60).max()
    # exact mid group: closest to 0.5 (METHODS.md §3)
    assert (mem.loc[mid["example_id"]] - 0.5).abs().max() <= (mem.dropna() - 0.5).abs().nsmallest(60).max()
    assert not mem.loc[high["example_id"]].isna().any()


def test_mix_is_a_third_from_each_group_and_disjoint(tables):
    exact, proxies, labels = tables
    forget = make_forget_set(PartitionConfig(kind="mix", size=90), exact, proxies, labels)
    mem = exact.set_index("example_id")["mem"].loc[forget["example_id"]]
    assert (mem >= exact["mem"].dropna().nlargest(30).min()).sum() >= 30
    assert (mem <= exact["mem"].dropna().nsmallest(30).max()).sum() >= 30


def test_proxy_mid_group_is_around_the_median(tables):
    exact, proxies, labels = tables
    score = lookup_score("confidence", exact, proxies)
    assert score.mid_target == pytest.approx(proxies["confidence"].median())


def test_refinement_orders_subsets_low_to_high(tables):
    exact, proxies, labels = tables
    score = lookup_score("exact", exact, proxies)
    table = refine(exact["example_id"].to_numpy()[10:100], score)
    means = table.groupby("subset")["refine_score"].mean()
    assert means["low"] < means["mid"] < means["high"]
    assert list(SUBSETS) == ["low", "mid", "high"]


def test_missing_refine_scores_go_to_mid(tables):
    exact, proxies, labels = tables
    table = refine(exact["example_id"].to_numpy()[:30], lookup_score("exact", exact, proxies))
    assert set(table.loc[table["example_id"].isin(exact["example_id"][:5]), "subset"]) == {"mid"}


def test_forget_set_larger_than_its_group_is_an_error(tables):
    exact, proxies, labels = tables
    with pytest.raises(ValueError, match=r"partition.size=700 is larger than the 595 examples .* lower partition.size"):
        make_forget_set(PartitionConfig(kind="high", size=700), exact, proxies, labels)


def test_unknown_score_lists_the_choices(tables):
    exact, proxies, labels = tables
    with pytest.raises(ValueError, match=r"unknown score 'mem_score'; choose one of \['exact', 'exact_prob', 'entanglement', 'confidence'\]"):
        make_forget_set(PartitionConfig(group_score="mem_score"), exact, proxies, labels)
