"""The proxy study table (docs/methods.md §2): agreement and cost per proxy."""
import numpy as np
import pandas as pd
import pytest

from memunlearn.memorization.study import plot_proxy_vs_exact, proxy_study


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ids = np.arange(200)
    exact = pd.Series(rng.uniform(-0.1, 1, 200), index=ids)
    proxies = pd.DataFrame({
        "example_id": ids,
        "confidence": exact.to_numpy() + rng.normal(0, 0.05, 200),  # a good proxy
        "confidence__raw": 0.0,
        "entropy": rng.normal(size=200),  # an uninformative one
        "entropy__raw": 0.0,
    })
    return proxies, exact


def test_study_ranks_the_informative_proxy_first_and_prices_it(data):
    proxies, exact = data
    planted = exact.nlargest(10).index.to_numpy()
    table = proxy_study(proxies, exact, planted, {"confidence": 2.0, "entropy": 0.5}, exact_seconds=400.0, top_n=20)
    assert table["proxy"].tolist() == ["confidence", "entropy"]
    good = table.set_index("proxy").loc["confidence"]
    assert good["spearman"] > 0.95 and good["precision_at_n"] > 0.7 and good["planted_noise_auroc"] > 0.95
    assert abs(table.set_index("proxy").loc["entropy", "spearman"]) < 0.2
    assert good["cost_fraction_of_exact"] == pytest.approx(2.0 / 400.0)
    assert good["times_cheaper_than_exact"] == pytest.approx(200.0)


def test_one_scatter_per_proxy(data, tmp_path):
    proxies, exact = data
    paths = plot_proxy_vs_exact(proxies, exact, tmp_path, planted_ids=[0, 1])
    assert sorted(p.name for p in paths) == ["confidence.png", "entropy.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
