"""What the pipeline and sweep flows share: the DVC repository, stage order, the Prefect tasks that reproduce a
stage and write params, the MLflow grouping of one flow run, and ``--set`` parsing.

Absolute imports only in this package: a served deployment loads a flow's
file by path (Prefect's entrypoint), not as part of the package.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import networkx as nx
from prefect import get_run_logger, task


def project_root() -> Path:
    """The DVC project a flow runs by default: the nearest folder holding dvc.yaml, from the working directory up."""
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "dvc.yaml").exists()), here)


@contextmanager
def in_repo(repo_dir: str):
    """DVC's API, like its CLI, resolves stage paths against the working directory."""
    from dvc.repo import Repo

    previous = os.getcwd()
    os.chdir(repo_dir)
    try:
        with Repo(".") as repo:
            yield repo
    finally:
        os.chdir(previous)


def stage_order(repo_dir: str) -> list[str]:
    """The pipeline's stage names, upstream first (DVC's graph), ties in dvc.yaml order."""
    with in_repo(repo_dir) as repo:
        position = {stage: i for i, stage in enumerate(repo.index.stages)}
        graph = repo.index.graph.reverse(copy=False)  # DVC's edges point from a stage to its deps
        ordered = nx.lexicographical_topological_sort(graph, key=position.get)
        return [stage.name for stage in ordered if getattr(stage, "name", None)]


@task(retries=1, retry_delay_seconds=5, task_run_name="dvc repro {stage}")
def reproduce_stage(repo_dir: str, stage: str, force: bool = False) -> bool:
    """Reproduce one stage if DVC finds it changed (or ``force``); True if it did."""
    with in_repo(repo_dir) as repo:
        ran = repo.reproduce(stage, single_item=True, force=force)
    outcome = "reproduced (ran, or restored from DVC's run cache)" if ran else "up to date, skipped"
    get_run_logger().info("%s: %s", stage, outcome)
    return bool(ran)


@task
def apply_overrides(repo_dir: str, overrides: dict[str, Any]) -> None:
    """Set dotted params in params.yaml, as `dvc exp run -S key=value` does (comments kept)."""
    from dvc.utils.serialize import modify_yaml

    with modify_yaml(Path(repo_dir) / "params.yaml") as params:
        for dotted, value in overrides.items():
            *parents, leaf = dotted.split(".")
            node = params
            for key in parents:
                if key not in node:
                    raise KeyError(f"override {dotted!r}: params.yaml has no section {key!r}")
                node = node[key]
            node[leaf] = value


@contextmanager
def mlflow_group(key: str, name: str):
    """Stages inherit these and log under one MLflow parent run."""
    saved = {k: os.environ.get(k) for k in ("MEMUNLEARN_RUN_GROUP", "MEMUNLEARN_RUN_NAME")}
    os.environ.update(MEMUNLEARN_RUN_GROUP=key, MEMUNLEARN_RUN_NAME=name)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs -> {key: value}, each value read as YAML."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)  # "0.1" -> 0.1, "[1, 2]" -> [1, 2], "finetune" -> "finetune"
    return out
