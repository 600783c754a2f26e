"""Prefect flow for deletion requests: the deployment ``memunlearn-forget/default`` (docs/requests.md).

The same request as ``memunlearn forget``: ids (a list or the path of an ids file) in, a verified, registered model
version out, its report as the run's Markdown artifact and in the run's log. One request at a time per lineage,
first triggered, first landed: a run first waits until every run of this flow on the same project that was
triggered before it (created earlier on the Prefect server) has finished, then takes the lineage's lock
(requests/ledger.jsonl.lock, which also serializes `memunlearn forget`), so each starts from the version the one
before it produced. A rejected request or bad input fails the run with its one-line reason; nothing is changed.

    python flows/forget.py --ids ids.csv --request-id gdpr-0042     # once (temporary local Prefect server)
    python flows/forget.py --serve                                    # serve 'memunlearn-forget/default'
    prefect deployment run memunlearn-forget/default -p request_id=gdpr-0042 -p 'ids=[12, 40]' -p repo_dir=$PWD
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, \
    FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import get_run_context

from memunlearn.cli import request_project
from memunlearn.requests import RequestError, RequestRejected, apply_policy, forget
from memunlearn.requests.report import markdown


FLOW = "memunlearn-forget"
UNFINISHED = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
POLL_SECONDS = 1.0


def earlier_requests(runs: Iterable[FlowRun], me: FlowRun, root: Path, now: datetime) -> list[FlowRun]:
    """The unfinished runs among ``runs`` that ``me`` must let land first: on the same project (``repo_dir``) and
    triggered before it (created earlier on the server; the run id breaks a tie), not merely scheduled for later."""
    def lineage(run: FlowRun) -> Path:
        return Path((run.parameters or {}).get("repo_dir", ".")).resolve()

    return [run for run in runs if run.id != me.id and (run.created, str(run.id)) < (me.created, str(me.id))
            and (run.expected_start_time is None or run.expected_start_time <= now) and lineage(run) == root]


def wait_for_earlier_requests(root: Path, logger) -> list[str]:
    """Block until no run of this flow triggered before this one on ``root`` is unfinished (FIFO by trigger time;
    the lineage's lock alone lets whichever arrives first go); the names of the runs waited for. A run whose process
    died without Prefect noticing stays Running and holds later ones: cancel it (`prefect flow-run cancel ID`)."""
    me = get_run_context().flow_run
    waited: dict[str, None] = {}  # run names in the order first seen
    ahead_before: list[str] = []
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED))))
            ahead = [run.name for run in earlier_requests(runs, me, root, datetime.now(timezone.utc))]
            if not ahead:
                return list(waited)
            if ahead != ahead_before:  # one line per change, not per poll
                logger.info("waiting for %d request run(s) triggered before this one on %s: %s", len(ahead), root,
                            ", ".join(ahead))
                waited.update(dict.fromkeys(ahead))
                ahead_before = ahead
            time.sleep(POLL_SECONDS)


@flow(name=FLOW, log_prints=True)
def forget_flow(request_id: str, ids: list[int | str] | str, repo_dir: str = ".", model: str | None = None,
                method: str | None = None, strategy: str | None = None) -> dict:
    """Handle one deletion request; returns {request_id, verdict, version}.

    ids: the data owner's ids (a built-in dataset's: its example ids), or the path of an ids file (CSV with an id
    column, JSON list, one per line).
    repo_dir: the project (its params.yaml, data/prepared, MLflow store and ledger).
    model: MLflow model URI to start from (default models:/memunlearn-original@production).
    """
    logger = get_run_logger()
    project = request_project(Path(repo_dir))
    wait_for_earlier_requests(project.root, logger)
    if isinstance(ids, str) and not Path(ids).is_absolute():
        ids = str(project.root / ids)
    try:
        outcome = forget(project, request_id, ids, model, method, strategy)
    except (RequestError, RequestRejected) as exc:
        raise RuntimeError(" ".join(str(exc).split())) from None
    if outcome.report and outcome.verdict == "accepted":
        text = markdown(outcome.report)
        logger.info(text)
        create_markdown_artifact(text, key=f"forget-{request_id.lower().replace('_', '-')}"[:60],
                                 description=f"deletion request {request_id}")
    base = apply_policy(project)
    if base:
        logger.info("retrained from scratch (%s): version %s is the new base", base.report["reason"], base.version)
    return {"request_id": request_id, "verdict": outcome.verdict, "version": outcome.version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-forget/default'")
    parser.add_argument("--ids", help="ids file")
    parser.add_argument("--request-id", help="the request's id")
    parser.add_argument("--repo-dir", default=".", help="the project (the working directory)")
    args = parser.parse_args()
    if args.serve:
        forget_flow.serve(name="default", description="memunlearn deletion request; parameters: request_id, ids "
                                                      "(a list or a path), repo_dir, model, method, strategy")
        return
    if not (args.ids and args.request_id):
        parser.error("give --ids and --request-id (or --serve)")
    print(json.dumps(forget_flow(args.request_id, args.ids, args.repo_dir), indent=2))


if __name__ == "__main__":
    main()
