"""The proxy study table (docs/methods.md §2): agreement with both exact scores, their ceilings, and cost."""
import math

import numpy as np
import pandas as pd
import pytest

from memunlearn.memorization.study import noise_ceiling, plot_proxy_vs_exact, proxy_study, tie_ceiling


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ids = np.arange(200)
    mem_prob = rng.uniform(-0.1, 1, 200)
    mem = np.where(rng.uniform(size=200) < 0.8, 0.0, np.round(mem_prob, 1))  # 0/1 variant: mostly exactly 0
    exact = pd.DataFrame({"mem_prob": mem_prob, "mem": mem}, index=pd.Index(ids, name="example_id"))
    proxies = pd.DataFrame({
        "example_id": ids,
        "confidence": mem_prob + rng.normal(0, 0.05, 200),  # a good proxy of mem_prob
        "confidence__raw": 0.0,
        "entropy": rng.normal(size=200),  # an uninformative one
        "entropy__raw": 0.0,
    })
    return proxies, exact


def test_study_ranks_the_informative_proxy_first_and_prices_it(data):
    proxies, exact = data
    planted = exact["mem_prob"].nlargest(10).index.to_numpy()
    table = proxy_study(proxies, exact, planted, {"confidence": 2.0, "entropy": 0.5}, exact_seconds=400.0, top_n=20)
    assert table["proxy"].tolist() == ["confidence", "entropy"]
    good = table.set_index("proxy").loc["confidence"]
    assert good["spearman"] > 0.95 and good["precision_at_n"] > 0.7 and good["planted_noise_auroc"] > 0.95
    assert abs(table.set_index("proxy").loc["entropy", "spearman"]) < 0.2
    assert good["cost_fraction_of_exact"] == pytest.approx(2.0 / 400.0)
    assert good["times_cheaper_than_exact"] == pytest.approx(200.0)


def test_each_proxy_is_scored_against_mem_prob_and_mem_with_the_ceilings_beside(data):
    proxies, exact = data
    table = proxy_study(proxies, exact, [], {}, 400.0, 20, split_halves={"mem_prob": 0.6, "mem": 0.8})
    good = table.set_index("proxy").loc["confidence"]
    # the headline columns are mem_prob's; *_mem are the 0/1 variant's, on which the good proxy loses its ties
    assert good["spearman"] == pytest.approx(exact["mem_prob"].corr(proxies.set_index("example_id")["confidence"],
                                                                    method="spearman"))
    assert good["spearman_mem"] < good["spearman"] - 0.2
    assert good["noise_ceiling"] == pytest.approx(math.sqrt(1.2 / 1.6))  # sqrt(2r / (1 + r)), r = 0.6
    assert good["noise_ceiling_mem"] == pytest.approx(math.sqrt(1.6 / 1.8))
    assert good["tie_ceiling"] == pytest.approx(1.0)  # mem_prob has no ties
    assert good["tie_ceiling_mem"] < 0.9  # 80% of mem tied at 0
    assert good["spearman_mem"] <= good["tie_ceiling_mem"] + 1e-9


def test_ceilings_are_bounds_and_missing_reliability_gives_none():
    assert noise_ceiling(1.0) == 1.0 and noise_ceiling(0.0) != noise_ceiling(0.0)  # NaN
    assert math.isnan(noise_ceiling(None)) and math.isnan(noise_ceiling(-0.2))
    assert noise_ceiling(0.5) == pytest.approx(math.sqrt(2 / 3)) and noise_ceiling(0.5) > 0.5
    # a score that is 0 for 83 of 100 examples: a tie-free proxy reaches about 0.5 at most
    tied = pd.Series(np.r_[np.zeros(83), np.arange(1, 18)])
    assert 0.4 < tie_ceiling(tied) < 0.7
    assert tie_ceiling(pd.Series(np.arange(50.0))) == pytest.approx(1.0)


def test_exact_scores_without_either_column_are_refused(data):
    proxies, exact = data
    with pytest.raises(ValueError, match="dvc repro memorize"):
        proxy_study(proxies, exact.rename(columns={"mem": "x", "mem_prob": "y"}), [], {}, 1.0, 5)


def test_one_scatter_per_proxy(data, tmp_path):
    proxies, exact = data
    paths = plot_proxy_vs_exact(proxies, exact["mem_prob"], tmp_path, planted_ids=[0, 1])
    assert sorted(p.name for p in paths) == ["confidence.png", "entropy.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
