"""End to end: deletion requests as the Prefect deployment ``memunlearn-forget/default`` on a real Prefect server
on 127.0.0.1. Two requests triggered at once land one after the other in the order they were triggered (the later
starts from the version the earlier produced) and the ledger's chain holds: the later run waits for the earlier one
on the Prefect server, not for whichever reaches the lineage's lock first; the lock held by the test while both
start makes them truly concurrent."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import memunlearn
from memunlearn.data import load_split
from memunlearn.requests import ledger
from memunlearn.tracking import store_location

import requests_project
from test_deployments_e2e import FINAL, PREFECT, background, flow_run, free_port, logs, trigger, wait_for, _ok

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = "memunlearn-forget/default"


def _deployment(api: str) -> bool:
    return httpx.get(f"{api}/deployments/name/{DEPLOYMENT}", timeout=30).status_code == 200


def test_two_triggers_at_once_land_one_after_the_other_in_order(tmp_path, monkeypatch):
    project = requests_project.build(tmp_path / "project")
    ids = np.random.default_rng(3).permutation(load_split(project / "data/prepared/train.npz").example_ids.numpy())
    api = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", api)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PYTHONPATH", str(Path(memunlearn.__file__).parents[1]))  # this checkout's code everywhere
    port = api.split(":")[-1].split("/")[0]
    with background([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], tmp_path,
                    tmp_path / "server.log"):
        wait_for(lambda: _ok(f"{api}/health"), 180, "the Prefect server", tmp_path / "server.log")
        with background([sys.executable, str(REPO / "flows/forget.py"), "--serve"], REPO, tmp_path / "serve.log"):
            wait_for(lambda: _deployment(api), 180, "the served deployment", tmp_path / "serve.log")
            running = lambda r: flow_run(api, r)["state_type"] == "RUNNING"  # noqa: E731
            (project / "second.json").write_text(json.dumps(ids[10:20].tolist()))
            with ledger.lineage_lock(project / "requests/ledger.jsonl"):  # nobody lands until both are running
                first = trigger(project, DEPLOYMENT, "request_id=first", f"ids={json.dumps(ids[:10].tolist())}",
                                f"repo_dir={project}")
                second = trigger(project, DEPLOYMENT, "request_id=second", "ids=second.json", f"repo_dir={project}")
                waiting = lambda: any("waiting for 1 request run(s) triggered before" in line["message"]  # noqa: E731
                                      for line in logs(api, second))
                wait_for(lambda: running(first) and running(second) and waiting(), 300, "both runs to start",
                         tmp_path / "serve.log")
            done = {}
            for run_id in (first, second):
                done[run_id] = wait_for(lambda r=run_id: (lambda f: f if f["state_type"] in FINAL else None)(
                    flow_run(api, r)), 600, f"flow run {run_id}", tmp_path / "serve.log")
    assert [done[r]["state_type"] for r in (first, second)] == ["COMPLETED", "COMPLETED"], \
        (tmp_path / "serve.log").read_text()[-3000:]
    assert done[second]["start_time"] < done[first]["end_time"]  # both ran at once: one waited for the lock
    assert done[first]["start_time"] < done[second]["end_time"]
    entries = ledger.read(project / "requests/ledger.jsonl")
    assert [e["request_id"] for e in entries] == ["first", "second"] and ledger.chain_problems(entries) == []
    assert entries[0]["parent_version"] == "1" and entries[1]["parent_version"] == entries[0]["new_version"]
    from mlflow.tracking import MlflowClient
    alias = MlflowClient(tracking_uri=store_location(project)[0]).get_model_version_by_alias(
        "memunlearn-original", "production")
    assert str(alias.version) == entries[1]["new_version"]
