"""ToW and SVC MIA (docs/methods.md §6)."""
import numpy as np
import pytest

from memunlearn.evaluation import MIA_FEATURES, svc_mia, tow, tow_mia


def test_tow_is_one_for_the_oracle_itself():
    oracle = {"forget_acc": 0.6, "retain_acc": 0.99, "test_acc": 0.9, "mia": 0.4}
    assert tow(oracle, oracle) == 1.0
    assert tow_mia(oracle, oracle) == 1.0


def test_tow_multiplies_the_three_gaps():
    unlearned = {"forget_acc": 0.9, "retain_acc": 0.95, "test_acc": 0.8, "mia": 0.1}
    oracle = {"forget_acc": 0.6, "retain_acc": 0.99, "test_acc": 0.9, "mia": 0.4}
    assert tow(unlearned, oracle) == pytest.approx((1 - 0.3) * (1 - 0.04) * (1 - 0.1))
    assert tow_mia(unlearned, oracle) == pytest.approx((1 - 0.3) * (1 - 0.04) * (1 - 0.1))


def _probs(true_prob, n_classes=4, seed=0):
    """(N, C) softmax rows with the given true-class probability; label 0."""
    rng = np.random.default_rng(seed)
    n = len(true_prob)
    rest = rng.dirichlet(np.ones(n_classes - 1), size=n) * (1 - true_prob)[:, None]
    return np.column_stack([true_prob, rest]), np.zeros(n, dtype=np.int64)


def test_mia_calls_confident_examples_members():
    rng = np.random.default_rng(0)
    retain = _probs(rng.uniform(0.95, 1.0, 400))  # members: very confident
    test = _probs(rng.uniform(0.2, 0.8, 400))  # non-members: less so
    looks_trained = _probs(rng.uniform(0.95, 1.0, 100))
    looks_unseen = _probs(rng.uniform(0.2, 0.8, 100))
    assert svc_mia(retain, test, looks_trained) < 0.1
    assert svc_mia(retain, test, looks_unseen) > 0.9


@pytest.mark.parametrize("feature", MIA_FEATURES.names())
def test_every_mia_feature_runs(feature):
    rng = np.random.default_rng(1)
    result = svc_mia(_probs(rng.uniform(0.9, 1, 50)), _probs(rng.uniform(0.1, 0.9, 50)),
                     _probs(rng.uniform(0, 1, 20)), feature=feature)
    assert 0.0 <= result <= 1.0


def test_score_against_oracle_scores_every_model_and_the_oracle_scores_tow_one(synthetic):
    import torch

    from memunlearn.evaluation import EvaluateConfig, score_against_oracle
    from memunlearn.models import build_model

    train, test, info, flipped = synthetic
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    models = {name: build_model("small_cnn", 1, info.num_classes, info.image_size, seed=s)
              for s, name in enumerate(("unlearned", "oracle"))}
    table = score_against_oracle(models, forget, retain, test, {"low": forget}, info,
                                 EvaluateConfig(mia_max_per_class=50), torch.device("cpu"), oracle="oracle")
    assert table["model"].tolist() == ["unlearned", "oracle"]
    assert table.set_index("model").loc["oracle", "tow"] == 1.0 and "forget_acc_low" in table
    with pytest.raises(ValueError, match="not among the models"):
        score_against_oracle(models, forget, retain, test, {}, info, EvaluateConfig(), torch.device("cpu"))


def test_scoring_a_cells_saved_outputs_gives_the_metrics_of_scoring_its_model(synthetic, tmp_path):
    """Issue 12 item 5: a grid cell keeps its model's outputs; scoring them later (another MIA feature, say)
    gives exactly what scoring the model would have."""
    import torch

    from memunlearn.evaluation import EvaluateConfig, ModelOutputs, model_metrics, model_outputs, output_metrics
    from memunlearn.models import build_model

    train, test, info, flipped = synthetic
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    subsets = {"low": forget.select_ids(flipped[:5]), "high": forget.drop_ids(flipped[:5])}
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=3)
    model_outputs(model, forget, retain, test, subsets, info, torch.device("cpu")).save(tmp_path / "cell.npz")
    saved = ModelOutputs.load(tmp_path / "cell.npz", "ablations_cell")
    for feature in ("true_prob", "correctness", "entropy"):
        cfg = EvaluateConfig(mia_feature=feature, mia_max_per_class=50, seed=1)
        assert output_metrics(saved, forget, retain, test, subsets, cfg) == model_metrics(
            model, forget, retain, test, subsets, info, cfg, torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match=r"run `dvc repro ablations_cell` first"):
        ModelOutputs.load(tmp_path / "missing.npz", "ablations_cell")
