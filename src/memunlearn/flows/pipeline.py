"""Prefect flow that runs the DVC pipeline, one task per stage.

DVC decides what reruns (a stage whose deps and params are unchanged is
skipped); Prefect adds retries, logs, parameters and deployments. Every
stage of one flow run is grouped under one MLflow parent run.

    python flows/pipeline.py                      # run once (temporary local Prefect server)
    python flows/pipeline.py --set unlearn.method=finetune --force evaluate
    python flows/pipeline.py --serve              # serve the deployment 'memunlearn-pipeline/default'
    prefect deployment run memunlearn-pipeline/default -p 'overrides={"unlearn.strategy": "vanilla"}'
"""
from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import networkx as nx
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _in_repo(repo_dir: str):
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
    with _in_repo(repo_dir) as repo:
        position = {stage: i for i, stage in enumerate(repo.index.stages)}
        graph = repo.index.graph.reverse(copy=False)  # DVC's edges point from a stage to its deps
        ordered = nx.lexicographical_topological_sort(graph, key=position.get)
        return [stage.name for stage in ordered if getattr(stage, "name", None)]


@task(retries=1, retry_delay_seconds=5, task_run_name="dvc repro {stage}")
def reproduce_stage(repo_dir: str, stage: str, force: bool = False) -> bool:
    """Reproduce one stage if DVC finds it changed (or ``force``); True if it did."""
    with _in_repo(repo_dir) as repo:
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
def _mlflow_group(key: str, name: str):
    """Stages inherit these and log under one MLflow parent run."""
    saved = {k: os.environ.get(k) for k in ("MEMUNLEARN_RUN_GROUP", "MEMUNLEARN_RUN_NAME")}
    os.environ.update(MEMUNLEARN_RUN_GROUP=key, MEMUNLEARN_RUN_NAME=name)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@flow(name="memunlearn-pipeline", log_prints=True)
def pipeline(
    repo_dir: str = str(PROJECT_ROOT),
    overrides: dict[str, Any] | None = None,
    force: list[str] | None = None,
) -> dict[str, bool]:
    """Reproduce every stage in order; returns {stage: ran}.

    overrides: dotted params written to params.yaml first, e.g. {"unlearn.method": "finetune"}.
    force: stages to rerun even if unchanged (their downstream reruns as DVC decides).
    """
    if overrides:
        apply_overrides(repo_dir, overrides)
    forced = set(force or [])
    stages = stage_order(repo_dir)
    unknown = forced - set(stages)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)} in force; stages: {stages}")
    ran = {}
    with _mlflow_group(f"prefect-{flow_run.id or 'local'}", f"prefect {flow_run.name or 'pipeline'}"):
        for stage in stages:
            ran[stage] = reproduce_stage(repo_dir, stage, force=stage in forced)
    return ran


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)  # "0.1" -> 0.1, "[1, 2]" -> [1, 2], "finetune" -> "finetune"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a param")
    parser.add_argument("--force", nargs="*", default=[], metavar="STAGE", help="rerun these stages")
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-pipeline/default'")
    args = parser.parse_args()
    if args.serve:
        pipeline.serve(name="default", description="memunlearn DVC pipeline; parameters: overrides, force")
        return
    ran = pipeline(overrides=_parse_overrides(args.set), force=args.force)
    print(json.dumps(ran, indent=2))


if __name__ == "__main__":
    main()
