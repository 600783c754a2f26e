"""MLflow tracking: the only module that imports mlflow (docs/architecture.md rule 6).

A stage writes its outputs first and then hands a ``StageRecord`` to
``record_stage``; a tracking failure is reported as a warning and never
raises, so a computed result is never lost to tracking. Stage runs are
nested under one parent run per pipeline invocation, found or created by
the invocation's ``group_key``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import nn

log = logging.getLogger("memunlearn.tracking")

GROUP_TAG = "memunlearn.group"
STAGE_TAG = "memunlearn.stage"
# Declaring requirements skips MLflow's slow environment inference (~11 s -> ~3 s per model).
MODEL_REQUIREMENTS = ["torch", "memunlearn"]


@dataclass(frozen=True)
class TrackingTarget:
    """Where and under what to record (the stage resolves these from its environment)."""

    uri: str  # e.g. sqlite:///path/mlruns.db or http://127.0.0.1:5000
    artifact_location: str | None  # for a newly created experiment; None = server default
    experiment: str = "memunlearn"
    group_key: str = ""  # one parent run per distinct key
    group_name: str = "pipeline"
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. git commit


@dataclass
class StageRecord:
    stage: str
    params: Mapping[str, Any] = field(default_factory=dict)  # flattened "section.key" -> value
    metrics: Mapping[str, float] = field(default_factory=dict)
    history: list[Mapping[str, float]] = field(default_factory=list)  # per-step rows, e.g. per epoch
    artifacts: list[Path] = field(default_factory=list)
    models: Mapping[str, nn.Module] = field(default_factory=dict)
    input_example: Any = None  # (B, C, H, W) float32 array: MLflow 3 needs one to export a model
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. a claim's verdict


def record_stage(record: StageRecord, target: TrackingTarget) -> str | None:
    """Log one stage run under its pipeline's parent run; return its run id, or None on failure."""
    try:
        return _record(record, target)
    except Exception as exc:  # tracking must never lose a computed result
        log.warning("MLflow tracking of stage %r failed (%s: %s); the stage's outputs are saved",
                    record.stage, type(exc).__name__, exc)
        return None


def _record(record: StageRecord, target: TrackingTarget) -> str:
    import mlflow
    import mlflow.pytorch

    mlflow.set_tracking_uri(target.uri)
    experiment_id = _experiment_id(mlflow, target)
    parent_id = _parent_run_id(mlflow, experiment_id, target)
    tags = {**target.tags, **record.tags, STAGE_TAG: record.stage, GROUP_TAG: target.group_key}
    with mlflow.start_run(experiment_id=experiment_id, run_name=record.stage, parent_run_id=parent_id,
                          tags=tags) as run:
        if record.params:
            mlflow.log_params({k: _param_value(v) for k, v in record.params.items()})
        finite = {_metric_name(k): float(v) for k, v in record.metrics.items() if _is_number(v)}
        if finite:
            mlflow.log_metrics(finite)
        for step, row in enumerate(record.history):
            mlflow.log_metrics({_metric_name(k): float(v) for k, v in row.items() if _is_number(v)}, step=step)
        for path in record.artifacts:
            path = Path(path)
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        for name, model in record.models.items():
            mlflow.pytorch.log_model(model.cpu().eval(), name=name, input_example=record.input_example,
                                     pip_requirements=MODEL_REQUIREMENTS)
    mlflow.tracking.MlflowClient().set_terminated(parent_id)  # parent's end time = its last stage's
    return run.info.run_id


def _experiment_id(mlflow, target: TrackingTarget) -> str:
    experiment = mlflow.get_experiment_by_name(target.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(target.experiment, artifact_location=target.artifact_location)


def _parent_run_id(mlflow, experiment_id: str, target: TrackingTarget) -> str:
    found = mlflow.search_runs(
        [experiment_id], filter_string=f"tags.`{GROUP_TAG}` = '{target.group_key}' and tags.`{STAGE_TAG}` = 'pipeline'",
        max_results=1, output_format="list",
    )
    if found:
        return found[0].info.run_id
    run = mlflow.tracking.MlflowClient().create_run(
        experiment_id, run_name=target.group_name,
        tags={**target.tags, GROUP_TAG: target.group_key, STAGE_TAG: "pipeline"},
    )
    return run.info.run_id


def _metric_name(name: str) -> str:
    """MLflow allows alphanumerics and _ - . space : / in names: 'rum[exact].tow' -> 'rum_exact_.tow'."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def _is_number(v: Any) -> bool:
    try:
        return v == v and abs(float(v)) != float("inf")  # drops NaN and inf
    except (TypeError, ValueError):
        return False


def _param_value(v: Any) -> str:
    text = str(list(v) if isinstance(v, tuple) else v)
    return text if len(text) <= 6000 else text[:5997] + "..."


