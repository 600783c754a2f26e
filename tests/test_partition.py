"""Forget sets and RUM refinement (docs/methods.md §3): sizes, disjointness, ordering, ties, composition, errors."""
import numpy as np
import pandas as pd
import pytest

from memunlearn.partition import (FORGET_KINDS, PartitionConfig, ScoreSources, SUBSETS, choose_forget_set,
                                  describe_forget_set, lookup_score, refine)

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


def make_forget_set(cfg, exact, proxies, labels):
    return choose_forget_set(cfg, ScoreSources(exact, proxies, labels))


def class_sorted_with_ties(n_per_class=100, classes=5):
    """Like the embedded MNIST: stored sorted by class, and most examples have exact mem == 0 (a tie)."""
    ids = np.arange(n_per_class * classes)
    labels = pd.Series(ids // n_per_class, index=ids)
    mem = np.zeros(len(ids))
    mem[::25] = np.linspace(0.2, 1.0, len(ids[::25]))  # a few memorized examples, spread over the classes
    exact = pd.DataFrame({"example_id": ids, "mem": mem, "mem_prob": mem})
    proxies = pd.DataFrame({"example_id": ids, "confidence": mem})
    return exact, proxies, labels


@pytest.mark.parametrize("kind", [k for k in FORGET_KINDS.names() if k not in ("class", "canaries")])
def test_every_kind_gives_n_distinct_training_ids(tables, kind):
    exact, proxies, labels = tables
    forget = make_forget_set(PartitionConfig(kind=kind, size=90), exact, proxies, labels)
    assert len(forget) == 90
    assert forget["example_id"].is_unique
    assert set(forget["example_id"]) <= set(labels.index)
    assert forget["subset"].value_counts().to_dict() == {"low": 30, "mid": 30, "high": 30}


def test_canaries_kind_takes_every_copy_of_the_chosen_canaries(tables):
    """Text: labels are canary copy counts (0 = corpus text); every copy goes, or the model still sees the secret."""
    exact, proxies, _ = tables
    copies = pd.Series(0, index=exact["example_id"].to_numpy())
    copies.iloc[-20:] = [1] * 4 + [16] * 16
    forget = make_forget_set(PartitionConfig(kind="canaries", size=0), exact, proxies, copies)
    assert set(forget["example_id"]) == set(copies.index[copies > 0])
    only_16 = make_forget_set(PartitionConfig(kind="canaries", size=0, classes=(16,)), exact, proxies, copies)
    assert set(only_16["example_id"]) == set(copies.index[copies == 16])
    with pytest.raises(ValueError, match="partition.size: 0"):
        make_forget_set(PartitionConfig(kind="canaries", size=20), exact, proxies, copies)


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
    # exact mid group: closest to 0.5 (docs/methods.md §3)
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
    score = lookup_score("confidence", ScoreSources(exact, proxies, labels))
    assert score.mid_target == pytest.approx(proxies["confidence"].median())


def test_refinement_orders_subsets_low_to_high(tables):
    exact, proxies, labels = tables
    score = lookup_score("exact", ScoreSources(exact, proxies, labels))
    table = refine(exact["example_id"].to_numpy()[10:100], score)
    means = table.groupby("subset")["refine_score"].mean()
    assert means["low"] < means["mid"] < means["high"]
    assert list(SUBSETS) == ["low", "mid", "high"]


def test_missing_refine_scores_go_to_mid(tables):
    exact, proxies, labels = tables
    table = refine(exact["example_id"].to_numpy()[:30], lookup_score("exact", ScoreSources(exact, proxies, labels)))
    assert set(table.loc[table["example_id"].isin(exact["example_id"][:5]), "subset"]) == {"mid"}


def test_forget_set_larger_than_its_group_is_an_error(tables):
    exact, proxies, labels = tables
    with pytest.raises(ValueError, match=r"partition.size=700 is larger than the 595 examples .* lower partition.size"):
        make_forget_set(PartitionConfig(kind="high", size=700), exact, proxies, labels)


def test_unknown_score_lists_the_choices(tables):
    exact, proxies, labels = tables
    with pytest.raises(ValueError, match=r"unknown score 'mem_score'; choose one of \['exact', 'exact_prob', "
                                         r"'entanglement', 'centroid_distance', 'confidence'\]"):
        make_forget_set(PartitionConfig(group_score="mem_score"), exact, proxies, labels)


# ---- ties and composition (no forget set may mean "the first class") ----------

@pytest.mark.parametrize("kind", ["low", "mid", "mix"])
def test_ties_are_broken_at_random_not_by_id_or_class(kind):
    """400 of 500 examples tie at mem 0 and ids are sorted by class: an id-order tie-break would fill the low
    set with class 0. A seeded random tie-break gives about 1/5 of each class (binomial sd ~0.04 at n=60)."""
    exact, proxies, labels = class_sorted_with_ties()
    forget = make_forget_set(PartitionConfig(kind=kind, size=60, seed=0), exact, proxies, labels)
    shares = labels.loc[forget["example_id"]].value_counts(normalize=True)
    assert len(shares) == 5 and shares.max() < 0.5


def test_tie_breaks_follow_the_seed_and_only_the_seed(tables):
    exact, proxies, labels = class_sorted_with_ties()
    cfg = PartitionConfig(kind="low", size=60)
    first, again = (make_forget_set(cfg, exact, proxies, labels) for _ in range(2))
    other = make_forget_set(PartitionConfig(kind="low", size=60, seed=1), exact, proxies, labels)
    assert first["example_id"].tolist() == again["example_id"].tolist()
    assert set(first["example_id"]) != set(other["example_id"])


def test_refinement_breaks_ties_at_random():
    exact, proxies, labels = class_sorted_with_ties()
    tied = exact.loc[exact["mem"] == 0, "example_id"].to_numpy()[:90]  # all tied, ids in class order
    table = refine(tied, lookup_score("exact", ScoreSources(exact, proxies, labels)), seed=0)
    low_ids = table.loc[table["subset"] == "low", "example_id"]
    assert low_ids.max() > np.sort(tied)[29]  # not simply the 30 smallest ids


def test_describe_reports_class_histogram_and_planted_noise(tables):
    exact, proxies, labels = class_sorted_with_ties()
    forget = make_forget_set(PartitionConfig(kind="high", size=30), exact, proxies, labels)
    facts = describe_forget_set(forget, ScoreSources(exact, proxies, labels), planted_noise=forget["example_id"][:4])
    assert sum(facts["class_histogram"].values()) == 30 and facts["forget_size"] == 30
    assert facts["largest_class_share"] == max(facts["class_histogram"].values()) / 30
    assert facts["planted_noise_in_forget"] == 4
    assert set(facts["subset_largest_class_share"]) == set(SUBSETS)
    assert "entanglement_score" not in facts  # no embeddings given


@pytest.mark.parametrize("kind", ["high", "low", "mid", "mix", "random"])
def test_exclude_planted_noise_draws_f_from_clean_examples_only(tables, kind):
    """The clean control: the 60 most memorized examples are planted noise; without the option every high set is
    made of them, with it no forget set holds one, and the set keeps its size."""
    exact, proxies, labels = tables
    planted = exact.sort_values("mem_prob", ascending=False)["example_id"].to_numpy()[:60]
    sources = ScoreSources(exact, proxies, labels, planted=planted)
    cfg = PartitionConfig(kind=kind, size=45, group_score="exact_prob", refine_score="exact_prob", seed=1)
    plain = choose_forget_set(cfg, sources)
    clean = choose_forget_set(PartitionConfig(**{**cfg.__dict__, "exclude_planted_noise": True}), sources)
    assert len(clean) == 45 and not clean["example_id"].isin(planted).any()
    if kind == "high":
        assert plain["example_id"].isin(planted).all()  # the confound the option removes
        clean_scores = exact.set_index("example_id")["mem_prob"].drop(planted)
        assert set(clean["example_id"]) == set(clean_scores.nlargest(45).index)  # the most memorized clean ones


def test_exclude_planted_noise_without_the_planted_ids_fails_naming_the_key(tables):
    exact, proxies, labels = tables
    with pytest.raises(ValueError, match="partition.exclude_planted_noise"):
        choose_forget_set(PartitionConfig(kind="high", size=30, exclude_planted_noise=True),
                          ScoreSources(exact, proxies, labels))
