"""MLflow tracking against a real SQLite store: nesting, grouping, and failures that never raise."""
import logging

import mlflow
import pytest
from torch import nn

from memunlearn.tracking import GROUP_TAG, STAGE_TAG, StageRecord, TrackingTarget, record_stage


@pytest.fixture
def target(tmp_path):
    return TrackingTarget(f"sqlite:///{tmp_path / 'mlruns.db'}", (tmp_path / "artifacts").as_uri(),
                          experiment="test", group_key="invocation-1", tags={"git_commit": "abc"})


def _runs(target):
    mlflow.set_tracking_uri(target.uri)
    experiment = mlflow.get_experiment_by_name(target.experiment)
    return mlflow.search_runs([experiment.experiment_id], output_format="list")


def test_stages_of_one_invocation_share_a_parent_run(target, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    record_stage(StageRecord("train", {"train.lr": 0.1, "train.milestones": (1, 2)}, {"acc": 0.9},
                             history=[{"loss": 1.0}, {"loss": 0.5}], artifacts=[table]), target)
    record_stage(StageRecord("evaluate", metrics={"tow": 0.8, "nan_metric": float("nan"), "rum[exact].tow": 0.9}),
                 target)

    runs = _runs(target)
    parents = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    assert len(parents) == 1
    children = {r.data.tags[STAGE_TAG]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"train", "evaluate"}
    train = children["train"]
    assert train.data.params == {"train.lr": "0.1", "train.milestones": "[1, 2]"}
    assert train.data.metrics["acc"] == 0.9 and train.data.tags["git_commit"] == "abc"
    history = mlflow.tracking.MlflowClient().get_metric_history(train.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]
    assert [a.path for a in mlflow.artifacts.list_artifacts(run_id=train.info.run_id)] == ["table.csv"]
    assert "nan_metric" not in children["evaluate"].data.metrics
    assert children["evaluate"].data.metrics["rum_exact_.tow"] == 0.9  # names MLflow rejects are made valid


def test_another_invocation_gets_its_own_parent(target):
    record_stage(StageRecord("train"), target)
    other = TrackingTarget(target.uri, target.artifact_location, target.experiment, group_key="invocation-2")
    record_stage(StageRecord("train"), other)
    groups = {r.data.tags[GROUP_TAG] for r in _runs(target) if r.data.tags[STAGE_TAG] == "pipeline"}
    assert groups == {"invocation-1", "invocation-2"}


def test_a_logged_model_is_retrievable(target):
    import numpy as np
    import torch

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    record_stage(StageRecord("train", models={"original_model": model},
                             input_example=np.zeros((2, 1, 2, 2), dtype=np.float32)), target)
    mlflow.set_tracking_uri(target.uri)
    logged = mlflow.search_logged_models(experiment_ids=[mlflow.get_experiment_by_name("test").experiment_id],
                                         output_format="list")
    assert [m.name for m in logged] == ["original_model"]
    loaded = mlflow.pytorch.load_model(logged[0].model_uri)
    x = torch.randn(3, 1, 2, 2)  # another batch size than the example's
    assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_tracking_failure_warns_and_never_raises(tmp_path, caplog):
    broken = TrackingTarget(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'mlruns.db'}", None, group_key="g")
    (tmp_path / "missing-dir").write_text("a file where a folder should be")
    with caplog.at_level(logging.WARNING, logger="memunlearn.tracking"):
        assert record_stage(StageRecord("train", metrics={"acc": 1.0}), broken) is None
    assert "MLflow tracking of stage 'train' failed" in caplog.text
