"""The figures module and the memorization ranking: pure functions, checked on what they draw."""
import numpy as np
import pandas as pd
import pytest

from memunlearn.evaluation.figures import (NOISE_COLOR, accuracy_bars, epsilon_histogram, exposure_bars,
                                           memorized_examples, save, score_by_group, tow_by_variant, variant_panels)
from memunlearn.memorization.ranking import ranked_examples
from memunlearn.modality.text.evaluation import exposure_columns


@pytest.fixture
def ranked():
    """12 examples of 3 classes, scores 0.00..0.11 by id; example 10 (label 2, was 0) is planted noise."""
    ids = np.arange(12)
    scores = pd.DataFrame({"example_id": [*ids[::-1], 12], "mem_prob": [*ids[::-1] / 100, np.nan],
                           "mem_prob_se": 0.01, "mem": 0.0, "mem_se": 0.0})  # 12: unscored (K too small)
    planted = pd.DataFrame({"example_id": [10], "clean_label": [0], "noisy_label": [2]})
    table = ranked_examples(scores, [*ids, 12], [*ids % 3, 0], planted)
    return table.assign(position=table["example_id"])  # image row i is example i


def test_ranking_puts_the_most_memorized_first_with_labels_and_planted_noise(ranked):
    assert ranked["example_id"].tolist() == list(range(11, -1, -1))
    assert ranked["score"].is_monotonic_decreasing and (ranked["score_se"] == 0.01).all()
    assert ranked.set_index("example_id").loc[10, ["label", "planted_noise", "clean_label"]].tolist() == [1, True, 0]
    assert ranked["planted_noise"].sum() == 1 and (ranked.loc[~ranked["planted_noise"], "clean_label"] == -1).all()
    with pytest.raises(ValueError, match="unknown exact score 'confidence'"):
        ranked_examples(pd.DataFrame(), [], [], pd.DataFrame(), score="confidence")


def test_memorized_examples_shows_top_and_bottom_per_class_and_frames_planted_noise(ranked):
    images = np.zeros((12, 1, 4, 4), dtype=np.uint8)
    fig = memorized_examples(images, ranked, ["zero", "one", "two"], per_class=2)
    axes = np.array(fig.axes).reshape(3, 4)
    titles = [[ax.get_title() for ax in row] for row in axes]
    # class 1 (ids 1, 4, 7, 10): most memorized 10 (planted, was "zero") and 7, least memorized 1 then 4
    assert titles[1] == ["0.10 (was zero)", "0.07", "0.01", "0.04"]
    assert axes[1][0].spines["top"].get_edgecolor()[:3] == pytest.approx((0.839, 0.153, 0.157), abs=1e-3)
    assert NOISE_COLOR == "tab:red" and not axes[1][1].spines["top"].get_visible()
    assert [row[0].get_ylabel() for row in axes] == ["zero", "one", "two"]
    fig.clf()


def test_a_class_with_few_examples_never_shows_one_twice(ranked):
    few = ranked[ranked["example_id"].isin([0, 3, 6])]  # class 0, three examples, per_class 2
    fig = memorized_examples(np.zeros((12, 1, 4, 4), dtype=np.uint8), few, ["a"], per_class=2)
    assert [ax.get_title() for ax in fig.axes] == ["0.06", "0.03", "0.00", ""]
    fig.clf()


def test_accuracy_bars_draw_each_models_values():
    table = pd.DataFrame({"model": ["original", "unlearned", "retrain"], "forget_acc": [1.0, 0.5, 0.4],
                          "retain_acc": [0.9, 0.9, 0.9], "test_acc": [0.8, 0.8, 0.8], "mia": [0.7, 0.5, 0.5]})
    fig = accuracy_bars(table)
    ax = fig.axes[0]
    heights = [bar.get_height() for container in ax.containers for bar in container]
    assert heights == [1.0, 0.9, 0.8, 0.7, 0.5, 0.9, 0.8, 0.5, 0.4, 0.9, 0.8, 0.5]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["original", "unlearned", "oracle (retrain)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["FA", "RA", "TA", "MIA"]


def test_tow_by_variant_labels_what_varies_in_the_grid():
    summary = pd.DataFrame({"grid": ["rum_compare"] * 3 + ["ablations"], "method": ["neggrad_plus"] * 4,
                            "group_score": ["confidence", "confidence", "entropy", "exact"],
                            "kind": ["mix"] * 4, "strategy": ["vanilla", "rum_f", "rum_f", "vanilla"],
                            "tow_mean": [0.9, 0.8, 0.7, 0.1], "tow_ci95": [0.05, np.nan, 0.02, 0.0]})
    ax = tow_by_variant(summary, "rum_compare").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["confidence / vanilla", "confidence / rum_f",
                                                           "entropy / rum_f"]
    assert [bar.get_width() for bar in ax.patches] == [0.9, 0.8, 0.7]


def test_epsilon_histogram_counts_every_finite_epsilon(tmp_path):
    eps = pd.DataFrame({"epsilon": [0.0, 0.0, 1.5, 50.0, np.inf]})
    fig = epsilon_histogram(eps, bins=5)
    assert sum(bar.get_height() for bar in fig.axes[0].patches) == 4
    path = save(fig, tmp_path / "deeper/eps.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_variant_panels_draw_one_panel_per_metric_with_the_grids_variants():
    summary = pd.DataFrame({"grid": ["ablations"] * 2 + ["levels"], "method": ["ga_embedding", "ga_all", "ga_embedding"],
                            "group_score": ["exact"] * 3, "kind": ["canaries"] * 3, "strategy": ["vanilla"] * 3,
                            "stored_mib_mean": [2.5, 200.0, 2.5], "val_ppl_change_mean": [0.05, 0.3, 0.1],
                            "val_ppl_change_ci95": [0.01, 0.02, 0.0]})
    fig = variant_panels(summary, "ablations", {"stored_mib": "MiB", "val_ppl_change": "ppl change"})
    assert len(fig.axes) == 2 and [ax.get_xlabel() for ax in fig.axes] == ["MiB", "ppl change"]
    assert [[bar.get_width() for bar in ax.patches] for ax in fig.axes] == [[2.5, 200.0], [0.05, 0.3]]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["ga_embedding", "ga_all"]


def test_score_by_group_puts_each_example_in_its_groups_box():
    scores = pd.Series([0.0, 0.1, 0.9, 0.8, 0.7], index=pd.Index([10, 11, 12, 13, 14], name="example_id"))
    copies = pd.Series([0, 0, 16, 16, 4], index=[10, 11, 12, 13, 14])
    ax = score_by_group(scores, copies, "canary copies", "mem_prob").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(n=2)", "4\n(n=1)", "16\n(n=2)"]
    dots = [line for line in ax.lines if line.get_marker() == "."]
    assert [sorted(line.get_ydata()) for line in dots] == [[0.0, 0.1], [0.7], [0.8, 0.9]]


def test_exposure_bars_order_copy_counts_numerically():
    table = pd.DataFrame({"model": ["original", "retrain"], "exposure_16x": [12.0, 1.0], "exposure_4x": [9.0, 1.5],
                          "exposure_mean": [10.0, 1.2]})
    columns = exposure_columns(table.columns)
    assert columns == ["exposure_4x", "exposure_16x"]
    assert exposure_columns([*table.columns, "exposure_16x_mean", "exposure_2x_mean"], "_mean") == [
        "exposure_2x_mean", "exposure_16x_mean"]
    ax = exposure_bars(table, columns).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4x copies", "16x copies"]
    assert [bar.get_height() for container in ax.containers for bar in container] == [9.0, 12.0, 1.5, 1.0]
