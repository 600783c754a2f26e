"""Prefect flow that runs the DVC pipeline.

Without overrides it reproduces the workspace, one task per stage (DVC
decides what reruns: a stage whose deps and params are unchanged is
skipped). With overrides the whole run is a DVC experiment (`dvc exp run
--temp -S ...`): the checkout's params.yaml and outputs stay untouched and
`dvc exp show` lists the run. Either way params.yaml is checked first, one
flow run at a time holds the checkout (later ones queue), every line DVC and
the stages print goes into the run's log, the stages log under one MLflow
parent run named for the experiment or flow run, and the run's artifact
holds the evaluation table and a link to that parent run.

    python -m flows.pipeline             # run once (temporary local Prefect server)
    python -m flows.pipeline --set unlearn.method=finetune     # a DVC experiment
    python -m flows.pipeline --preset params/text.yaml                     # the text run
    python -m flows.pipeline --force evaluate
    python -m flows.pipeline --serve     # serve the deployment 'memunlearn-pipeline/default'
    prefect deployment run memunlearn-pipeline/default -p 'overrides={"unlearn.strategy": "vanilla"}'
"""
from __future__ import annotations

import argparse
import io
import json
from typing import Any

import pandas as pd
from prefect import flow
from prefect.runtime import flow_run

from flows.tasks import (check_params, experiment_name, mlflow_parent, one_run_per_checkout,
                         parse_overrides, preset_overrides, progress, project_root, publish, read_output,
                         reproduce_stage, run_experiment, stage_order)

EVALUATION = "results/evaluation.csv"


@flow(name="memunlearn-pipeline", log_prints=True)
def pipeline(
    repo_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: list[str] | None = None,
    experiment: str | None = None,
    target: str | None = None,
) -> dict[str, bool]:
    """Reproduce every stage; returns {stage: ran}.

    repo_dir: the DVC project (None: the one holding the working directory).
    overrides: dotted params, e.g. {"unlearn.method": "finetune"}: the run becomes a DVC experiment.
    force: stages to rerun even if unchanged, in the workspace (their downstream reruns as DVC decides).
    experiment: the DVC experiment's name (None: the flow run's name and id).
    target: run only this stage and what it needs (None: every stage), e.g. summary for a text run.
    """
    repo_dir = str(repo_dir or project_root())
    check_params(repo_dir, overrides)
    stages = stage_order(repo_dir, target)
    unknown = set(force or []) - set(stages)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)} in force; stages: {stages}")
    if overrides and force:
        raise ValueError("force reruns stages in the workspace; overrides run a DVC experiment: give one of them")
    name = (experiment or experiment_name()) if overrides else None
    with one_run_per_checkout(repo_dir), mlflow_parent(repo_dir, name or f"pipeline {flow_run.name}", name) as (
            env, link):
        if name:
            ran = run_experiment(repo_dir, name, overrides, [target] if target else [], stages, env)
        else:
            ran = {stage: reproduce_stage(repo_dir, stage, stage in (force or []), env) for stage in progress(stages)}
    evaluation = read_output(repo_dir, EVALUATION, name)
    publish("memunlearn-evaluation", f"memunlearn-pipeline {name or 'workspace'}: evaluation",
            pd.read_csv(io.StringIO(evaluation)) if evaluation else None, link, name)
    return ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param: the run becomes a DVC experiment")
    parser.add_argument("--name", help="the DVC experiment's name (default: the flow run's)")
    parser.add_argument("--force", nargs="*", default=[], metavar="STAGE", help="rerun these stages")
    parser.add_argument("--preset", help="a params preset as overrides, e.g. params/text.yaml (--set wins)")
    parser.add_argument("--target", help="run only this stage and what it needs, e.g. summary")
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-pipeline/default'")
    args = parser.parse_args()
    if args.serve:
        pipeline.serve(name="default", description="memunlearn DVC pipeline; parameters: overrides (a DVC "
                                         "experiment), force, experiment, repo_dir")
        return
    overrides = {**(preset_overrides(args.preset) if args.preset else {}), **parse_overrides(args.set)}
    ran = pipeline(overrides=overrides, force=args.force, experiment=args.name, target=args.target)
    print(json.dumps(ran, indent=2))


if __name__ == "__main__":
    main()
