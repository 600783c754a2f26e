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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import psutil
import torch
import yaml

from memunlearn.devices import resolve_device
from memunlearn.tracking import StageRecord, TrackingTarget, record_stage

ROOT = Path.cwd()  # dvc runs every stage from the repository root
PARAMS_FILE = ROOT / "params.yaml"

# Every path a stage reads or writes; dvc.yaml declares the same ones.
PREPARED = ROOT / "data/prepared"
TRAIN_DIR = ROOT / "data/train"
MEMORIZE_DIR = ROOT / "data/memorize"
PROXIES_DIR = ROOT / "data/proxies"
PARTITION_DIR = ROOT / "data/partition"
ORACLE_DIR = ROOT / "data/oracle"
ORACLE_CACHE = ROOT / "data/oracle_cache"  # retrain oracles by content (training/oracle.py): no stage trains one twice
UNLEARN_DIR = ROOT / "data/unlearn"
METRICS_DIR = ROOT / "metrics"
RESULTS_DIR = ROOT / "results"
SWEEP_DATA_DIR = ROOT / "data/sweep"  # <grid>/<score>-<kind>-<seed>/ (oracles), <grid>/cells/<cell>.npz (outputs)
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


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def input_example(info) -> np.ndarray:
    """A (2, C, H, W) float input for MLflow's model signature (batch 2: a batch of 1 would fix the size)."""
    return np.zeros((2, info.in_channels, info.image_size, info.image_size), dtype=np.float32)


def device(name: str) -> torch.device:
    chosen = resolve_device(name)
    log.info("device: %s", chosen)
    return chosen


# ---- tracking ----------------------------------------------------------------

def tracking_target() -> TrackingTarget:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store beside the repo."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlruns.db'}"
    artifacts = None if uri.startswith("http") else (ROOT / "mlartifacts").as_uri()
    key, name = _invocation()
    return TrackingTarget(uri, artifacts, os.environ.get("MLFLOW_EXPERIMENT_NAME", "memunlearn"),
                          key, name, {"git_commit": _git_commit()})


def track(record: StageRecord) -> None:
    record_stage(record, tracking_target())


def _invocation() -> tuple[str, str]:
    """A key shared by all stages of one pipeline invocation.

    The Prefect flow sets MEMUNLEARN_RUN_GROUP; under a plain ``dvc repro``
    the key is the enclosing dvc process (pid + start time), so every stage
    it runs lands under one parent run.
    """
    if os.environ.get("MEMUNLEARN_RUN_GROUP"):
        key = os.environ["MEMUNLEARN_RUN_GROUP"]
        return key, os.environ.get("MEMUNLEARN_RUN_NAME", f"pipeline {key[:8]}")
    for proc in psutil.Process().parents():
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if any(Path(arg).name == "dvc" for arg in cmd[:2]) or "dvc" in cmd[1:3]:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(proc.create_time()))
            return f"dvc-{proc.pid}-{proc.create_time():.0f}", f"{' '.join(Path(a).name for a in cmd[:3])} {started}"
    return f"stage-{os.getpid()}-{time.time():.0f}", "single stage"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


# ---- running -----------------------------------------------------------------

class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def stage(fn: Callable[[], None]) -> Callable[[], None]:
    """Run a stage's main; bad input ends in one line naming the problem and the fix."""

    @functools.wraps(fn)
    def main() -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        torch.set_num_threads(int(os.environ.get("MEMUNLEARN_THREADS", torch.get_num_threads())))
        try:
            fn()
        except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)

    return main
