"""What every stage shares: params, paths, device, tracking target, error handling.

Stages are adapters (docs/architecture.md rule 1): read the declared params, build a
typed config, call the library, write the declared outputs, then record the
run in MLflow. This module is the only place that reads params.yaml, the
environment and the working directory. It is plumbing, not a DVC dep, so it
imports no library code but tracking and devices (tests/test_stage_deps.py).
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import yaml

# memunlearn.devices and memunlearn.tracking import torch: each function imports what it uses, so a stage that
# needs only the paths (sources: runs on every repro) stays torch-free
if TYPE_CHECKING:
    import torch

    from memunlearn.tracking import ModelCard, ModelRecord, StageRecord, StageRun, TrackingTarget

ROOT = Path.cwd()  # dvc runs every stage from the repository root
PARAMS_FILE = ROOT / "params.yaml"

# Every path a stage reads or writes; dvc.yaml declares the same ones.
PREPARED = ROOT / "data/prepared"
TRAIN_DIR = ROOT / "data/train"
MEMORIZE_DIR = ROOT / "data/memorize"
PROXIES_DIR = ROOT / "data/proxies"
PARTITION_DIR = ROOT / "data/partition"
ORACLE_DIR = ROOT / "data/oracle"
# The caches by content live in the user's checkout (DVC_ROOT: DVC sets it to the checkout also when a stage runs
# in a temporary copy, `dvc exp run --temp` or a queued experiment), so experiments share them with the workspace.
WORKSPACE = Path(os.environ.get("DVC_ROOT") or ROOT)
ORACLE_CACHE = WORKSPACE / "data/oracle_cache"  # retrain oracles by content (training/oracle.py): none trains twice
UNLEARN_DIR = ROOT / "data/unlearn"
UNLEARN_CACHE = WORKSPACE / "data/unlearn_cache"  # unlearning runs by content (unlearning/cache.py): none runs twice
SEED_ORIGINAL_CACHE = WORKSPACE / "data/seed_original_cache"  # per_seed grids' originals and scores by content
METRICS_DIR = ROOT / "metrics"
RESULTS_DIR = ROOT / "results"
TUNE_DIR = ROOT / "data/tune"  # study.db (the Optuna studies, persistent: a rerun resumes them), best.json
GRIDS_DATA_DIR = ROOT / "data/grids"  # <grid>/<score>-<kind>-<seed>/ (oracles), <grid>/cells/<cell>.npz (outputs)
RAW_DIR = ROOT / "data/raw"
FIRST_EPOCH_GRADS = TRAIN_DIR / "first_epoch_grads.pt"  # when train_records.first_epoch_grads is on

log = logging.getLogger("memunlearn")


def load_params(*sections: str) -> dict[str, Any]:
    """The named params.yaml sections (only those the stage declares in dvc.yaml)."""
    if not PARAMS_FILE.exists():
        raise FileNotFoundError(f"{PARAMS_FILE} is missing; run stages from the repository root")
    params = yaml.safe_load(PARAMS_FILE.read_text()) or {}
    missing = [s for s in sections if s not in params]
    if missing:
        raise KeyError(f"params.yaml lacks section(s) {missing}; see the README's params reference")
    return {s: params[s] or {} for s in sections}


def environment() -> Mapping[str, str]:
    """The process environment: how to run (MEMUNLEARN_RUNNER, ...), never what to compute, so not DVC params."""
    return os.environ


def tag_param(dotted: str) -> str:
    """A params.yaml value read for an MLflow tag only: it never reaches a result, so no stage declares it."""
    node: Any = yaml.safe_load(PARAMS_FILE.read_text()) if PARAMS_FILE.exists() else {}
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


def device(name: str) -> torch.device:
    from memunlearn.devices import resolve_device

    chosen = resolve_device(name)
    log.info("device: %s", chosen)
    return chosen


# ---- tracking ----------------------------------------------------------------

_RUN: StageRun | None = None  # this stage's MLflow run, open from the start of the stage (``stage``) to its end


def tracking_target() -> TrackingTarget:
    """MLFLOW_TRACKING_URI if set, else the SQLite store of the DVC project: DVC_ROOT, which DVC sets to the
    workspace even when the stage runs in a temporary copy (`dvc exp run --temp`, a queued experiment)."""
    from memunlearn.tracking import EXPERIMENT_TAG, TrackingTarget, git_commit, store_location

    uri, artifacts = store_location(WORKSPACE, os.environ.get("MLFLOW_TRACKING_URI"))
    key, name = _invocation()
    experiment = os.environ.get("DVC_EXP_NAME")
    tags = {"git_commit": git_commit(ROOT), **({EXPERIMENT_TAG: experiment} if experiment else {})}
    return TrackingTarget(uri, artifacts, os.environ.get("MLFLOW_EXPERIMENT_NAME", "memunlearn"), key, name, tags)


def stage_name() -> str:
    """The stage's name as DVC addresses it (``DVC_STAGE``, e.g. ``grids``), else the script's."""
    return os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem


def track(record: StageRecord) -> None:
    """Log the stage's record into its run and close the run."""
    from memunlearn.tracking import finish_stage

    global _RUN
    finish_stage(_RUN, record, _RUN.target if _RUN else tracking_target())
    _RUN = None


def record(item: StageRecord) -> str | None:
    """Log one finished piece of this stage (a grid's forget set or cell) as a run of its own beside the
    stage's, under the same parent; return its run id (None if tracking is unavailable)."""
    from memunlearn.tracking import record_stage

    return record_stage(item, _RUN.target if _RUN else tracking_target())


def log_epoch(row: Mapping[str, Any]) -> None:
    """Log one per-epoch row of a training loop live (``fit``'s ``on_row``)."""
    from memunlearn.tracking import log_row

    log_row(_RUN, row)


def registered(model: torch.nn.Module, role: str, info, /, card: ModelCard | None = None, **tags: Any
               ) -> ModelRecord:
    """``model``, to be registered as ``memunlearn-<role>`` with these tags (method, strategy, forget kind) and
    its modality's ``card`` (None: an image model's, from ``info``)."""
    from memunlearn.tracking import ModelRecord

    return ModelRecord(model, role, info, {k: str(v) for k, v in tags.items()}, card)



def _invocation() -> tuple[str, str]:
    """A key shared by all stages of one pipeline invocation, and the parent run's name.

    The Prefect flows set MEMUNLEARN_RUN_GROUP and MEMUNLEARN_RUN_NAME; under
    a plain ``dvc repro`` or ``dvc exp run`` the key is the enclosing dvc
    process (pid + start time), so every stage it runs lands under one parent
    run, named for the DVC experiment if there is one.
    """
    if os.environ.get("MEMUNLEARN_RUN_GROUP"):
        key = os.environ["MEMUNLEARN_RUN_GROUP"]
        return key, os.environ.get("MEMUNLEARN_RUN_NAME", f"pipeline {key[:8]}")
    import psutil

    for proc in psutil.Process().parents():
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if any(Path(arg).name == "dvc" for arg in cmd[:2]) or "dvc" in cmd[1:3]:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(proc.create_time()))
            at = next(i for i, arg in enumerate(cmd) if arg == "dvc" or Path(arg).name == "dvc")
            name = os.environ.get("DVC_EXP_NAME") or " ".join(["dvc", *cmd[at + 1:at + 3], started])
            return f"dvc-{proc.pid}-{proc.create_time():.0f}", name
    return f"stage-{os.getpid()}-{time.time():.0f}", os.environ.get("DVC_EXP_NAME") or "single stage"


# ---- running -----------------------------------------------------------------

class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def stage(fn: Callable[[], None]) -> Callable[[], None]:
    """Run a stage's main inside its MLflow run (opened now, so its duration is the stage's; FAILED with the
    error if the stage fails); bad input ends in one line naming the problem and the fix."""

    @functools.wraps(fn)
    def main() -> None:
        from memunlearn.devices import set_threads_from_environment
        from memunlearn.tracking import StageRecord, fail_stage, start_stage

        global _RUN
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        _RUN = start_stage(stage_name(), tracking_target(), {"memunlearn.command": " ".join(sys.argv)})
        try:
            set_threads_from_environment()
            fn()
        except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {message}", file=sys.stderr)
            fail_stage(_RUN, f"error: {message}")
            sys.exit(1)
        except BaseException as exc:  # a bug (traceback follows) or Ctrl-C
            fail_stage(_RUN, f"{type(exc).__name__}: {exc}",
                       "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if _RUN is not None:  # the stage recorded nothing: close its run all the same
            track(StageRecord(stage_name()))

    return main


def __getattr__(name: str) -> Any:
    """``flatten`` (the stage scripts' params -> MLflow params), imported from tracking when a stage asks for it."""
    if name == "flatten":
        from memunlearn.tracking import flatten

        return flatten
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
