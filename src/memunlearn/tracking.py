"""MLflow tracking: the only module that imports mlflow (docs/architecture.md rule 6).

A stage's run opens when the stage starts (``start_stage``), so its duration
is the stage's, takes per-epoch rows live (``log_row``), and closes when the
stage ends: ``finish_stage`` logs the ``StageRecord`` (params, metrics,
artifacts, datasets, registered models, aliases) and marks it FINISHED;
``fail_stage`` marks it FAILED with the error. Stage runs of one pipeline
invocation nest under one parent run, found or created by the invocation's
``group_key``; the parent's status and end time follow its latest stage, and
a flow that opened the parent (``open_parent``) closes it itself. Every
function here warns and never raises on a tracking failure: a computed result
is never lost to tracking.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import nn

log = logging.getLogger("memunlearn.tracking")

GROUP_TAG = "memunlearn.group"
STAGE_TAG = "memunlearn.stage"
EXPERIMENT_TAG = "memunlearn.dvc_experiment"  # the DVC experiment a run belongs to
ERROR_TAG = "memunlearn.error"
PARENT_STAGE = "pipeline"  # STAGE_TAG of a parent run
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI
# Without it the MLflow 3 UI opens a new experiment on its GenAI overview instead of the runs table.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
DATASET_CONTEXT = {"D": "training", "F": "forget", "R": "retain", "T": "test"}
DEFAULT_UI = "http://127.0.0.1:5000"  # `make ui`


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as ``section.key`` -> value (a run's MLflow params; an empty section adds nothing)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class TrackingTarget:
    """Where and under what to record (the stage or flow resolves these from its environment)."""

    uri: str  # e.g. sqlite:///path/mlruns.db or http://127.0.0.1:5000
    artifact_location: str | None  # for a newly created experiment; None = server default
    experiment: str = "memunlearn"
    group_key: str = ""  # one parent run per distinct key
    group_name: str = "pipeline"
    tags: Mapping[str, str] = field(default_factory=dict)  # git commit, DVC experiment


def store_location(root: Path, uri: str | None = None) -> tuple[str, str | None]:
    """(tracking URI, artifact location): ``uri`` if given, else the SQLite store in ``root``; a SQLite store's
    artifacts sit beside its database file (``mlartifacts/``), a server keeps its own."""
    uri = uri or f"sqlite:///{Path(root) / 'mlruns.db'}"
    if uri.startswith("sqlite:///"):
        return uri, (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return uri, None


def git_commit(root: Path) -> str:
    """The checkout's HEAD commit ("none" outside git), tagged on every run and model."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


@dataclass(frozen=True)
class ModelCard:
    """What a registered model carries besides its weights: an input example (its signature) and the metadata a
    user needs (modality/base.py ``Modality.model_card``)."""

    input_example: Any  # e.g. (2, C, H, W) float32 images or (2, T) int64 token ids: batch 2, so not fixed
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ModelRecord:
    """A model to log and register as ``<experiment>-<role>`` (e.g. ``memunlearn-unlearned``), with ``tags``
    (method, strategy, forget kind; the forget-set digest is added from the record's F) and ``card``'s input
    example and metadata (without a card: an image model's, from ``info``'s normalization and class names)."""

    module: nn.Module
    role: str  # original | oracle | unlearned | <grid>-<group score>-<kind>
    info: Any  # memunlearn.data.DatasetInfo (TextInfo with a card)
    tags: Mapping[str, str] = field(default_factory=dict)
    card: ModelCard | None = None
    validate_serving: bool = True  # MLflow loads the logged model and runs its input example (0.1-0.4 s, CPU);
    #                                False where a version of the same architecture was validated before


@dataclass(frozen=True)
class RunModel:
    """A model to log and register into an earlier stage's run, once: each grid cell keeps its checkpoint and
    its run id, and `grids_report` logs every cell's model in one process (MLflow's model machinery and
    torch.export load once, not once per cell; README "MLflow" has the figure). ``load`` builds the
    ``ModelRecord`` and is called only for a run that has no model version yet (a rerun loads nothing)."""

    run_id: str
    name: str  # the model's name in that run, e.g. unlearned_model
    load: Callable[[], ModelRecord]
    forget_digest: str | None = None  # of the run's forget set (``dataset_digest``), a tag of the version
    unless: Alias | None = None  # skip it if model ``<experiment>-<role>`` has a version with these tags (a cached
    #                              run's identical model, registered when it was computed; ``alias`` unused)


@dataclass(frozen=True)
class Alias:
    """Point ``alias`` of model ``<experiment>-<role>`` at its newest version whose tags include ``tags``."""

    role: str
    alias: str
    tags: Mapping[str, str]


@dataclass
class StageRecord:
    stage: str
    params: Mapping[str, Any] = field(default_factory=dict)  # flattened "section.key" -> value
    metrics: Mapping[str, float] = field(default_factory=dict)
    history: list[Mapping[str, float]] = field(default_factory=list)  # per-step rows, e.g. per epoch
    artifacts: list[Path] = field(default_factory=list)
    models: Mapping[str, nn.Module | ModelRecord] = field(default_factory=dict)  # a bare module is not registered
    input_example: Any = None  # (B, C, H, W) float32 array for bare modules (a ModelRecord makes its own)
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. a claim's verdict
    datasets: Mapping[str, Any] = field(default_factory=dict)  # D/F/R/T -> a split (example_ids, labels)
    run_models: Sequence[RunModel] = ()  # logged into their own runs (skipped where a version already is)
    aliases: Sequence[Alias] = ()  # set after ``run_models``


@dataclass
class StageRun:
    """An open stage run."""

    run_id: str
    parent_id: str
    target: TrackingTarget
    rows_logged: int = 0


def _safely(what: str, default=None):
    def wrap(fn):
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # tracking must never lose a computed result
                log.warning("MLflow tracking failed to %s (%s: %s); the stage's outputs are saved", what,
                            type(exc).__name__, exc)
                return default
        call.__doc__, call.__name__ = fn.__doc__, fn.__name__
        return call
    return wrap


# ---- stage runs ----------------------------------------------------------------

@_safely("open the stage's run")
def start_stage(stage: str, target: TrackingTarget, tags: Mapping[str, str] | None = None) -> StageRun:
    """Open the stage's run (RUNNING) under its invocation's parent, which is set RUNNING too."""
    client = _client(target)
    experiment_id = _experiment_id(client, target)
    parent_id = _parent_run_id(client, experiment_id, target)
    client.update_run(parent_id, status="RUNNING")
    run = client.create_run(experiment_id, run_name=stage, tags={
        **target.tags, **(tags or {}), STAGE_TAG: stage, GROUP_TAG: target.group_key,
        "mlflow.parentRunId": parent_id})
    return StageRun(run.info.run_id, parent_id, target)


@_safely("log a row of live metrics")
def log_row(run: StageRun | None, row: Mapping[str, Any]) -> None:
    """Log one per-epoch row now (step = rows logged so far), e.g. from a training loop's hook."""
    if run is None:
        return
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(_mlflow_key(k), float(v), now, run.rows_logged) for k, v in row.items() if _is_number(v)]
    _client(run.target).log_batch(run.run_id, metrics=metrics)
    run.rows_logged += 1


def record_stage(record: StageRecord, target: TrackingTarget) -> str | None:
    """Log one finished stage in one go (its run opens and closes now); return its run id, or None."""
    return finish_stage(start_stage(record.stage, target), record, target)


@_safely("record the stage")
def finish_stage(run: StageRun | None, record: StageRecord, target: TrackingTarget) -> str:
    """Log ``record`` into the open ``run`` (opened now if it could not be at the start), mark it and its parent
    FINISHED; return the run id."""
    import mlflow

    run = run or start_stage(record.stage, target)
    if run is None:
        raise RuntimeError(f"no run could be opened for stage {record.stage!r}")
    client = _client(target)
    client.update_run(run.run_id, name=record.stage)
    client.set_tag(run.run_id, STAGE_TAG, record.stage)
    mlflow.set_tracking_uri(target.uri)
    with mlflow.start_run(run_id=run.run_id):
        _log_record(mlflow, record, run)
        forget_digest = _log_datasets(mlflow, record.datasets)
        for name, model in record.models.items():
            _log_model(mlflow, client, target, name, model, record.input_example, forget_digest)
    for item in record.run_models:
        if client.search_model_versions(f"run_id = '{item.run_id}'"):  # by an earlier report
            continue
        if item.unless and _versions_with(client, target, item.unless):
            continue
        _log_model(mlflow, client, target, item.name, item.load(), None, item.forget_digest, run_id=item.run_id)
    for alias in record.aliases:
        _set_alias(client, target, alias)
    client.set_terminated(run.parent_id, "FINISHED")  # the parent's end time is its latest stage's
    return run.run_id


@_safely("mark the stage's run failed")
def fail_stage(run: StageRun | None, error: str, status: str = "FAILED") -> None:
    """Mark the open run (and its parent) FAILED (or KILLED), the error as a tag and as the run's description."""
    if run is None:
        return
    client = _client(run.target)
    client.set_tag(run.run_id, ERROR_TAG, error[:5000])
    client.set_tag(run.run_id, NOTE_TAG, f"**{status}**: {error}"[:5000])
    client.set_terminated(run.run_id, status)
    client.set_terminated(run.parent_id, status)


def _log_record(mlflow, record: StageRecord, run: StageRun) -> None:
    if record.params:
        mlflow.log_params({_mlflow_key(k): _param_value(v) for k, v in record.params.items()})
    for key, value in record.tags.items():
        mlflow.set_tag(_mlflow_key(key), value)
    finite = {_mlflow_key(k): float(v) for k, v in record.metrics.items() if _is_number(v)}
    if finite:
        mlflow.log_metrics(finite)
    if not run.rows_logged:  # rows already logged live are not logged twice
        for step, row in enumerate(record.history):
            mlflow.log_metrics({_mlflow_key(k): float(v) for k, v in row.items() if _is_number(v)}, step=step)
    for path in map(Path, record.artifacts):
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=path.name)
        elif path.exists():
            mlflow.log_artifact(str(path))


# ---- datasets and models ---------------------------------------------------------

def dataset_digest(example_ids, labels) -> str:
    """Digest of a set of (example_id, label) pairs, independent of row order."""
    ids, labels = np.asarray(example_ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return hashlib.sha256(np.stack([ids[order], labels[order]]).tobytes()).hexdigest()[:12]


def _log_datasets(mlflow, datasets: Mapping[str, Any]) -> str | None:
    """Log each split as an MLflow dataset input (example ids and labels); return F's digest, if logged."""
    import warnings

    import mlflow.data
    import pandas as pd

    digests = {}
    for name, split in datasets.items():
        ids, labels = np.asarray(split.example_ids), np.asarray(split.labels)
        digests[name] = dataset_digest(ids, labels)
        frame = pd.DataFrame({"example_id": ids, "label": labels})
        with warnings.catch_warnings():  # "integer columns cannot represent missing values": ids never miss
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, name=name, targets="label", digest=digests[name])
            mlflow.log_input(dataset, context=DATASET_CONTEXT.get(name, name))
    return digests.get("F")


def registered_name(target: TrackingTarget, role: str) -> str:
    return f"{target.experiment}-{role}"


def model_requirements() -> list[str]:
    """Pinned pip requirements that install from PyPI: MLflow saves the model as a torch.export graph ("pt2"),
    which loads with torch alone, without this project's code."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]


def model_metadata(info, tags: Mapping[str, str], card: ModelCard | None = None) -> dict[str, Any]:
    """What a user of the model needs: the input normalization, class names (an image model's, without a
    ``card``), project version and commit."""
    import memunlearn
    from memunlearn.labels import class_names

    common = {"memunlearn_version": memunlearn.__version__, "git_commit": tags.get("git_commit", "none")}
    if card is not None:
        return {**common, **card.metadata}
    return {
        **common, "dataset": info.name, "input_shape": [info.in_channels, info.image_size, info.image_size],
        "input_normalization": "uint8 image / 255, then (x - mean) / std per channel",
        "mean": list(info.mean), "std": list(info.std),
        "class_names": class_names(info),
    }


def _log_model(mlflow, client, target: TrackingTarget, name: str, model: nn.Module | ModelRecord,
               input_example, forget_digest: str | None, run_id: str | None = None) -> None:
    """Log ``model`` into the active run, or into run ``run_id``; a ``ModelRecord`` is registered too."""
    import mlflow.pytorch

    if isinstance(model, nn.Module):
        mlflow.pytorch.log_model(model.cpu().eval(), name=name, input_example=input_example,
                                 pip_requirements=model_requirements())
        return
    info = model.info
    tags = {**model.tags, **({"forget_digest": forget_digest} if forget_digest else {})}
    example = (model.card.input_example if model.card is not None
               else np.zeros((2, info.in_channels, info.image_size, info.image_size), dtype=np.float32))  # batch 2
    logged = mlflow.pytorch.log_model(
        model.module.cpu().eval(), name=name, input_example=example, pip_requirements=model_requirements(),
        metadata=model_metadata(info, target.tags, model.card), registered_model_name=registered_name(target, model.role),
        tags=tags, validate_serving_input=model.validate_serving, **({"run_id": run_id} if run_id else {}))
    for key, value in {**tags, "git_commit": target.tags.get("git_commit", "none")}.items():
        client.set_model_version_tag(registered_name(target, model.role), logged.registered_model_version, key,
                                     str(value))


def _versions_with(client, target: TrackingTarget, alias: Alias) -> list:
    """The versions of model ``<experiment>-<alias.role>`` whose tags include ``alias.tags``."""
    return _tagged(client, registered_name(target, alias.role), alias.tags)


def _tagged(client, name: str, tags: Mapping[str, Any]) -> list:
    """The versions of registered model ``name`` whose tags include ``tags`` (values compared as strings)."""
    return [v for v in client.search_model_versions(f"name = '{name}'")
            if all(v.tags.get(k) == str(t) for k, t in tags.items())]


def _set_alias(client, target: TrackingTarget, alias: Alias) -> None:
    name = registered_name(target, alias.role)
    versions = _versions_with(client, target, alias)
    if not versions:
        log.warning("no version of model %r has tags %s; alias %r not set", name, dict(alias.tags), alias.alias)
        return
    client.set_registered_model_alias(name, alias.alias, max(versions, key=lambda v: int(v.version)).version)


# ---- parents: one per invocation ----------------------------------------------------

@_safely("open the parent run")
def open_parent(target: TrackingTarget) -> str:
    """Find or create the invocation's parent run (RUNNING); a flow opens it so it can link to it."""
    client = _client(target)
    parent_id = _parent_run_id(client, _experiment_id(client, target), target)
    client.update_run(parent_id, status="RUNNING")
    return parent_id


@_safely("close the parent run")
def close_parent(target: TrackingTarget, parent_id: str | None, ok: bool) -> None:
    if parent_id:
        _client(target).set_terminated(parent_id, "FINISHED" if ok else "FAILED")


@_safely("build the run's link", default="")
def run_link(target: TrackingTarget, run_id: str | None, ui: str | None = None) -> str:
    """The run's page in the MLflow UI (a tracking server's own, else ``ui``, default ``make ui``'s)."""
    if not run_id:
        return ""
    run = _client(target).get_run(run_id)
    return f"{_ui(target, ui)}/#/experiments/{run.info.experiment_id}/runs/{run_id}"


@_safely("find the experiment's runs", default="")
def runs_link(target: TrackingTarget, ui: str | None = None) -> str:
    """The runs table of ``target.experiment`` in the MLflow UI; "" if the store holds no such experiment (a
    missing SQLite store stays missing: nothing is created)."""
    if target.uri.startswith("sqlite:///") and not Path(target.uri.removeprefix("sqlite:///")).exists():
        return ""
    experiment = _client(target).get_experiment_by_name(target.experiment)
    return f"{_ui(target, ui)}/#/experiments/{experiment.experiment_id}/runs" if experiment else ""


def _ui(target: TrackingTarget, ui: str | None) -> str:
    """The MLflow UI's address: a tracking server's own, else ``ui``, default ``make ui``'s."""
    return (target.uri if target.uri.startswith("http") else (ui or DEFAULT_UI)).rstrip("/")


def _client(target: TrackingTarget):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=target.uri)


def _experiment_id(client, target: TrackingTarget) -> str:
    experiment = client.get_experiment_by_name(target.experiment)
    if experiment is None:
        return client.create_experiment(target.experiment, artifact_location=target.artifact_location,
                                        tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:  # an experiment made before this tag existed
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def _parent_run_id(client, experiment_id: str, target: TrackingTarget) -> str:
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{GROUP_TAG}` = '{target.group_key}' and "
                                       f"tags.`{STAGE_TAG}` = '{PARENT_STAGE}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=target.group_name,
                            tags={**target.tags, GROUP_TAG: target.group_key, STAGE_TAG: PARENT_STAGE})
    return run.info.run_id


def _mlflow_key(name: str) -> str:
    """MLflow allows alphanumerics and _ - . space : / in metric, param and tag names: 'rum[exact].tow' ->
    'rum_exact_.tow'."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def _is_number(v: Any) -> bool:
    try:
        return v == v and abs(float(v)) != float("inf")  # drops NaN and inf
    except (TypeError, ValueError):
        return False


def _param_value(v: Any) -> str:
    text = str(list(v) if isinstance(v, tuple) else v)
    return text if len(text) <= 6000 else text[:5997] + "..."


# ---- the model registry for deletion requests (memunlearn/requests/) ----------------------------------------
# These raise (a request must not go on without its registry), except ``claim_alias``, called by the train stage.

@dataclass(frozen=True)
class VersionRef:
    name: str  # registered model, e.g. memunlearn-original
    version: str
    run_id: str
    tags: Mapping[str, str]


def resolve_version(target: TrackingTarget, uri: str) -> VersionRef:
    """The version an MLflow model URI names: ``models:/<name>@<alias>`` or ``models:/<name>/<version>``;
    LookupError (one line) when it does not exist."""
    client = _client(target)
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if not match:
        raise LookupError(f"model URI {uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
    name, alias, number = match.groups()
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except Exception as exc:  # mlflow's RestException: not found
        raise LookupError(f"model {uri!r} does not exist in {target.uri} ({type(exc).__name__})") from None
    return VersionRef(name, str(found.version), found.run_id, dict(found.tags))


def load_state_dict(target: TrackingTarget, ref: VersionRef) -> dict:
    """The weights of a registered version (its torch.export graph keeps the module's parameter names)."""
    import mlflow
    import mlflow.pytorch

    mlflow.set_tracking_uri(target.uri)
    return mlflow.pytorch.load_model(f"models:/{ref.name}/{ref.version}").state_dict()


def training_digest(target: TrackingTarget, run_id: str) -> str | None:
    """The digest of the training data (``D``) logged into run ``run_id``, if any."""
    run = _client(target).get_run(run_id)
    for item in run.inputs.dataset_inputs:
        if any(t.key == "mlflow.data.context" and t.value == DATASET_CONTEXT["D"] for t in item.tags):
            return item.dataset.digest
    return None


def version_tags(target: TrackingTarget, name: str, version: str) -> dict[str, str] | None:
    """The tags of a version, None if it does not exist."""
    try:
        return dict(_client(target).get_model_version(name, version).tags)
    except Exception:
        return None


def versions_tagged(target: TrackingTarget, name: str, tags: Mapping[str, str]) -> list[VersionRef]:
    """Every version of ``name`` whose tags include ``tags``, oldest first."""
    found = _tagged(_client(target), name, tags)
    return [VersionRef(name, str(v.version), v.run_id, dict(v.tags)) for v in sorted(found, key=lambda v: int(v.version))]


def tag_version(target: TrackingTarget, name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = _client(target)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def set_alias(target: TrackingTarget, name: str, alias: str, version: str) -> None:
    _client(target).set_registered_model_alias(name, alias, version)


def alias_version(target: TrackingTarget, name: str, alias: str) -> str | None:
    try:
        return str(_client(target).get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


@_safely("set the serving alias")
def claim_alias(target: TrackingTarget, role: str, alias: str = "production") -> None:
    """Point ``alias`` of ``<experiment>-<role>`` at its newest version when no version holds it yet (the train
    stage's first run gives deletion requests their starting model; later runs leave it where requests moved it)."""
    name = registered_name(target, role)
    if alias_version(target, name, alias) is None:
        newest = versions_tagged(target, name, {})
        if newest:
            set_alias(target, name, alias, newest[-1].version)


@_safely("log the request's report")
def log_artifacts(target: TrackingTarget, run_id: str, paths: Sequence[Path]) -> None:
    """Log files into an existing run (a request's report, rewritten once its version is known)."""
    client = _client(target)
    for path in paths:
        client.log_artifact(run_id, str(path))
