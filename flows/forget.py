"""Prefect flow for deletion requests: the deployment ``memunlearn-forget/default`` (docs/requests.md).

The same request as ``memunlearn forget``: ids (a list or the path of an ids file) in, a verified, registered model
version out, its report as the run's Markdown artifact and in the run's log. One request at a time per lineage:
a second run triggered meanwhile waits for the lineage's lock (requests/ledger.jsonl.lock), so both land in
order, each starting from the version the one before it produced. A rejected request or bad input fails the run
with its one-line reason; nothing is changed.

    python flows/forget.py --ids ids.csv --request-id gdpr-0042     # once (temporary local Prefect server)
    python flows/forget.py --serve                                    # serve 'memunlearn-forget/default'
    prefect deployment run memunlearn-forget/default -p request_id=gdpr-0042 -p 'ids=[12, 40]' -p repo_dir=$PWD
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from memunlearn.cli import request_project
from memunlearn.requests import RequestError, RequestRejected, apply_policy, forget
from memunlearn.requests.report import markdown


@flow(name="memunlearn-forget", log_prints=True)
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
