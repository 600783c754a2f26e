"""Prefect flow that runs the DVC pipeline, one task per stage.

DVC decides what reruns (a stage whose deps and params are unchanged is
skipped); Prefect adds retries, logs, parameters and deployments. Every
stage of one flow run is grouped under one MLflow parent run.

    python -m memunlearn.flows.pipeline             # run once (temporary local Prefect server)
    python -m memunlearn.flows.pipeline --set unlearn.method=finetune --force evaluate
    python -m memunlearn.flows.pipeline --serve     # serve the deployment 'memunlearn-pipeline/default'
    prefect deployment run memunlearn-pipeline/default -p 'overrides={"unlearn.strategy": "vanilla"}'
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from memunlearn.flows.tasks import (apply_overrides, mlflow_group, parse_overrides, project_root, reproduce_stage,
                                   stage_order)


@flow(name="memunlearn-pipeline", log_prints=True)
def pipeline(
    repo_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: list[str] | None = None,
) -> dict[str, bool]:
    """Reproduce every stage in order; returns {stage: ran}.

    repo_dir: the DVC project (None: the one holding the working directory).
    overrides: dotted params written to params.yaml first, e.g. {"unlearn.method": "finetune"}.
    force: stages to rerun even if unchanged (their downstream reruns as DVC decides).
    """
    repo_dir = repo_dir or str(project_root())
    if overrides:
        apply_overrides(repo_dir, overrides)
    forced = set(force or [])
    stages = stage_order(repo_dir)
    unknown = forced - set(stages)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)} in force; stages: {stages}")
    ran = {}
    with mlflow_group(f"prefect-{flow_run.id or 'local'}", f"prefect {flow_run.name or 'pipeline'}"):
        for stage in stages:
            ran[stage] = reproduce_stage(repo_dir, stage, force=stage in forced)
    return ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a param")
    parser.add_argument("--force", nargs="*", default=[], metavar="STAGE", help="rerun these stages")
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-pipeline/default'")
    args = parser.parse_args()
    if args.serve:
        pipeline.serve(name="default", description="memunlearn DVC pipeline; parameters: overrides, force")
        return
    ran = pipeline(overrides=parse_overrides(args.set), force=args.force)
    print(json.dumps(ran, indent=2))


if __name__ == "__main__":
    main()
