"""MLflow tracking against a real SQLite store: stage runs open at the start, live rows, failures, nesting,
datasets, registered models and aliases, and tracking failures that never raise."""
import functools
import logging
import time

import mlflow
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from memunlearn.data import DatasetInfo, ImageSplit
from memunlearn.tracking import (EXPERIMENT_TAG, GROUP_TAG, STAGE_TAG, Alias, ModelRecord, RunModel,
                                 StageRecord, TrackingTarget, close_parent, dataset_digest, fail_stage, finish_stage, log_row,
                                 open_parent, record_stage, run_link, start_stage, store_location)

INFO = DatasetInfo("mnist_embedded", 10, 1, 4, (0.13,), (0.31,))


@pytest.fixture
def target(tmp_path):
    uri, artifacts = store_location(tmp_path)
    return TrackingTarget(uri, artifacts, experiment="test", group_key="invocation-1",
                          tags={"git_commit": "abc", EXPERIMENT_TAG: "exp-1"})


def _client(target):
    return mlflow.tracking.MlflowClient(tracking_uri=target.uri)


def _runs(target):
    experiment = _client(target).get_experiment_by_name(target.experiment)
    return _client(target).search_runs([experiment.experiment_id])


def _split(ids, labels=None) -> ImageSplit:
    ids = torch.as_tensor(ids)
    labels = torch.as_tensor(labels) if labels is not None else ids % 10
    return ImageSplit(torch.zeros(len(ids), 1, 4, 4, dtype=torch.uint8), labels, ids)


def _model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 10))


def test_store_location_keeps_artifacts_beside_the_database(tmp_path):
    assert store_location(tmp_path) == (f"sqlite:///{tmp_path}/mlruns.db", (tmp_path / "mlartifacts").as_uri())
    assert store_location(tmp_path, "sqlite:////x/y.db") == ("sqlite:////x/y.db", "file:///x/mlartifacts")
    assert store_location(tmp_path, "http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)


def test_stages_of_one_invocation_share_a_parent_run(target, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    record_stage(StageRecord("train", {"train.lr": 0.1, "train.milestones": (1, 2)}, {"acc": 0.9},
                             history=[{"loss": 1.0}, {"loss": 0.5}], artifacts=[table]), target)
    record_stage(StageRecord("evaluate", {"grid[0]": "a"}, {"tow": 0.8, "nan_metric": float("nan"),
                                                            "rum[exact].tow": 0.9},
                             tags={"verdict.first_beats_last[embedding]": "supported"}), target)

    runs = _runs(target)
    parents = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    assert len(parents) == 1 and parents[0].data.tags[EXPERIMENT_TAG] == "exp-1"
    children = {r.data.tags[STAGE_TAG]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"train", "evaluate"}
    train = children["train"]
    assert train.data.params == {"train.lr": "0.1", "train.milestones": "[1, 2]"}
    assert train.data.metrics["acc"] == 0.9 and train.data.tags["git_commit"] == "abc"
    history = _client(target).get_metric_history(train.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]
    assert [a.path for a in mlflow.artifacts.list_artifacts(run_id=train.info.run_id, tracking_uri=target.uri)] == [
        "table.csv"]
    assert "nan_metric" not in children["evaluate"].data.metrics
    evaluate = children["evaluate"].data  # names MLflow rejects are made valid, metrics, params and tags alike
    assert evaluate.metrics["rum_exact_.tow"] == 0.9 and evaluate.params == {"grid_0_": "a"}
    assert evaluate.tags["verdict.first_beats_last_embedding_"] == "supported"


def test_the_experiment_opens_on_training_runs_in_the_ui(target):
    record_stage(StageRecord("train"), target)
    experiment = _client(target).get_experiment_by_name("test")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_stage_run_spans_the_stage_and_takes_its_rows_live(target):
    run = start_stage("train", target)
    assert _client(target).get_run(run.run_id).info.status == "RUNNING"
    log_row(run, {"epoch": 1, "train_loss": 2.0})
    live = _client(target).get_metric_history(run.run_id, "train_loss")
    assert [(m.step, m.value) for m in live] == [(0, 2.0)]  # visible while the stage still runs
    time.sleep(1.0)
    log_row(run, {"epoch": 2, "train_loss": 1.0})
    history = [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}]
    finish_stage(run, StageRecord("train", history=history), target)

    finished = _client(target).get_run(run.run_id).info
    assert finished.status == "FINISHED" and finished.end_time - finished.start_time >= 1000
    losses = _client(target).get_metric_history(run.run_id, "train_loss")
    assert [(m.step, m.value) for m in losses] == [(0, 2.0), (1, 1.0)]  # the history is not logged twice
    assert _client(target).get_run(run.parent_id).info.status == "FINISHED"


def test_a_failed_stage_and_its_parent_read_failed_with_the_error(target):
    record_stage(StageRecord("train"), target)
    run = start_stage("unlearn", target)
    fail_stage(run, "error: unknown unlearning method 'forgetall'")
    failed = _client(target).get_run(run.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["memunlearn.error"] == "error: unknown unlearning method 'forgetall'"
    assert "forgetall" in failed.data.tags["mlflow.note.content"]
    assert _client(target).get_run(run.parent_id).info.status == "FAILED"


def test_another_invocation_gets_its_own_parent(target):
    record_stage(StageRecord("train"), target)
    other = TrackingTarget(target.uri, target.artifact_location, target.experiment, group_key="invocation-2")
    record_stage(StageRecord("train"), other)
    groups = {r.data.tags[GROUP_TAG] for r in _runs(target) if r.data.tags[STAGE_TAG] == "pipeline"}
    assert groups == {"invocation-1", "invocation-2"}


def test_a_flow_opens_and_closes_the_parent_and_links_to_it(target):
    parent = open_parent(TrackingTarget(target.uri, target.artifact_location, "test", "flow-1", "clever-fox"))
    flow_target = TrackingTarget(target.uri, target.artifact_location, "test", "flow-1")
    child = record_stage(StageRecord("train"), flow_target)
    assert _client(target).get_run(child).data.tags["mlflow.parentRunId"] == parent
    close_parent(flow_target, parent, ok=False)
    info = _client(target).get_run(parent).info
    assert (info.run_name, info.status) == ("clever-fox", "FAILED")
    assert run_link(flow_target, parent) == f"http://127.0.0.1:5000/#/experiments/{info.experiment_id}/runs/{parent}"


def test_datasets_are_logged_with_digests_that_ignore_row_order(target):
    forget = _split([5, 3, 9])
    assert dataset_digest([5, 3, 9], [5, 3, 9]) == dataset_digest([9, 5, 3], [9, 5, 3])
    assert dataset_digest([5, 3, 9], [5, 3, 9]) != dataset_digest([5, 3, 9], [5, 3, 8])
    run_id = record_stage(StageRecord("unlearn", datasets={"F": forget, "R": _split(range(10, 40))}), target)
    inputs = {d.dataset.name: d for d in _client(target).get_run(run_id).inputs.dataset_inputs}
    assert set(inputs) == {"F", "R"}
    assert inputs["F"].dataset.digest == dataset_digest([5, 3, 9], [5, 3, 9])
    assert [t.value for t in inputs["F"].tags if t.key == "mlflow.data.context"] == ["forget"]


def test_models_are_registered_with_tags_metadata_and_aliases(target):
    models = [_model() for _ in range(3)]
    for seed, model in enumerate(models):
        record_stage(StageRecord("ablations_cell", datasets={"F": _split([1, 2, 3])}, models={"unlearned_model": ModelRecord(
            model, "ablations-exact_prob-high", INFO, {"method": "neggrad_plus", "strategy": "rum_f", "seed": str(seed)})}),
            target)
    record_stage(StageRecord("grids_report", aliases=[
        Alias("ablations-exact_prob-high", "best-tow", {"method": "neggrad_plus", "seed": "1"})]), target)

    client = _client(target)
    latest = client.get_model_version_by_alias("test-ablations-exact_prob-high", "latest")
    best = client.get_model_version_by_alias("test-ablations-exact_prob-high", "best-tow")
    assert (int(latest.version), int(best.version)) == (3, 2)
    assert best.tags == {"method": "neggrad_plus", "strategy": "rum_f", "seed": "1", "git_commit": "abc",
                         "forget_digest": dataset_digest([1, 2, 3], [1, 2, 3])}

    uri = "models:/test-ablations-exact_prob-high@best-tow"
    local = mlflow.artifacts.download_artifacts(uri, tracking_uri=target.uri)
    metadata = yaml.safe_load(open(f"{local}/MLmodel"))["metadata"]
    assert metadata["mean"] == [0.13] and metadata["std"] == [0.31] and metadata["class_names"][3] == "3"
    assert metadata["git_commit"] == "abc" and metadata["memunlearn_version"]
    requirements = open(f"{local}/requirements.txt").read().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert not any(r.startswith("memunlearn") for r in requirements)  # nothing that no index has

    mlflow.set_tracking_uri(target.uri)
    loaded = mlflow.pytorch.load_model(uri)
    x = torch.randn(3, 1, 4, 4)  # another batch size than the example's
    assert torch.allclose(loaded(x), models[1](x), atol=1e-6)


def test_models_logged_later_into_their_cells_runs_once(target):
    """The grids' way: cells record no model; the report logs each cell's model into that cell's run."""
    models = [_model() for _ in range(2)]
    cells = [record_stage(StageRecord(f"ablations_cell@{seed}"), target) for seed in range(2)]
    loaded = []  # the cells whose model the report had to load

    def load(seed, model):
        loaded.append(seed)
        return ModelRecord(model, "ablations-exact_prob-high", INFO, {"seed": str(seed)})

    run_models = [RunModel(run_id, "unlearned_model", functools.partial(load, seed, model), forget_digest="d1")
                  for seed, (run_id, model) in enumerate(zip(cells, models))]
    report = StageRecord("grids_report", run_models=run_models,
                         aliases=[Alias("ablations-exact_prob-high", "best-tow", {"seed": "1"})])
    record_stage(report, target)
    record_stage(report, target)  # a report rerun (e.g. another MIA feature) logs (and loads) nothing twice
    assert loaded == [0, 1]

    client = _client(target)
    versions = client.search_model_versions("name = 'test-ablations-exact_prob-high'")
    assert sorted(v.run_id for v in versions) == sorted(cells)
    best = client.get_model_version_by_alias("test-ablations-exact_prob-high", "best-tow")
    assert best.run_id == cells[1] and best.tags["forget_digest"] == "d1"
    mlflow.set_tracking_uri(target.uri)
    x = torch.randn(3, 1, 4, 4)
    assert torch.allclose(mlflow.pytorch.load_model("models:/test-ablations-exact_prob-high@best-tow")(x), models[1](x),
                          atol=1e-6)


def test_a_cached_cells_model_is_registered_only_when_no_identical_version_is(target):
    """A grid rerun (an unrelated edit) re-records every cell, loaded from the unlearning cache: the report adds
    no version for a cell whose keys and forget set already have one, and adds one for a cell that has none
    (its run was computed by another stage)."""
    model, loaded = _model(), []

    def load(seed):
        loaded.append(seed)
        return ModelRecord(model, "ablations-exact_prob-high", INFO, {"seed": str(seed)})

    def report(seeds, cached):
        cells = [record_stage(StageRecord(f"ablations_cell@{seed}"), target) for seed in seeds]
        same = {seed: Alias("ablations-exact_prob-high", "", {"seed": str(seed), "forget_digest": "d1"}) for seed in seeds}
        record_stage(StageRecord("grids_report", run_models=[
            RunModel(run_id, "unlearned_model", functools.partial(load, seed), "d1", same[seed] if cached else None)
            for seed, run_id in zip(seeds, cells)]), target)

    report([0], cached=False)
    report([0, 1], cached=True)  # 0: registered when computed; 1: never registered
    assert loaded == [0, 1]
    versions = _client(target).search_model_versions("name = 'test-ablations-exact_prob-high'")
    assert sorted(v.tags["seed"] for v in versions) == ["0", "1"]


def test_a_bare_module_is_logged_but_not_registered(target):
    model = _model()
    record_stage(StageRecord("train", models={"original_model": model},
                             input_example=np.zeros((2, 1, 4, 4), dtype=np.float32)), target)
    experiment_id = _client(target).get_experiment_by_name("test").experiment_id
    logged = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert [m.name for m in logged] == ["original_model"]
    assert not _client(target).search_registered_models()


def test_tracking_failure_warns_and_never_raises(tmp_path, caplog):
    broken = TrackingTarget(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'mlruns.db'}", None, group_key="g")
    (tmp_path / "missing-dir").write_text("a file where a folder should be")
    with caplog.at_level(logging.WARNING, logger="memunlearn.tracking"):
        assert record_stage(StageRecord("train", metrics={"acc": 1.0}), broken) is None
        log_row(None, {"loss": 1.0})
        fail_stage(None, "error: x")
    assert "MLflow tracking failed" in caplog.text and "'train'" in caplog.text


def test_a_language_model_is_registered_with_its_modality_card(target):
    """A text run's models are registered like an image run's: the text modality's card gives a token-id input
    example and metadata (vocabulary, context, pad id) instead of image normalization (modality/base.py)."""
    from memunlearn.data.text import TextInfo
    from memunlearn.modality import load_modality
    from memunlearn.models import build_lm

    info = TextInfo("tiny_corpus", vocab_size=40, seq_len=8, pad_id=0, eos_id=1, corpus_sha256="c",
                    tokenizer_sha256="t")
    model = build_lm("gpt2_micro", info.vocab_size, info.seq_len, seed=0).eval()
    card = load_modality("text").model_card(info)
    record_stage(StageRecord("train", models={"original_model": ModelRecord(model, "original", info,
                                                                            {"model": "gpt2_micro"}, card)}), target)

    uri = "models:/test-original@latest"
    local = mlflow.artifacts.download_artifacts(uri, tracking_uri=target.uri)
    metadata = yaml.safe_load(open(f"{local}/MLmodel"))["metadata"]
    assert metadata["vocab_size"] == 40 and metadata["input_shape"] == [8] and metadata["pad_id"] == 0
    assert metadata["git_commit"] == "abc" and "class_names" not in metadata
    assert _client(target).get_model_version_by_alias("test-original", "latest").tags["model"] == "gpt2_micro"
