"""End to end: the flows as Prefect deployments on a real Prefect server on 127.0.0.1, triggered as a user would.

A tiny copy of the project (committed: DVC experiments need a baseline
commit) is served with `python -m flows.pipeline --serve`; `prefect
deployment run` triggers it with overrides twice and once with a bad value.
Each good run must be a DVC experiment (listed by `dvc exp show`, the
checkout's params.yaml byte for byte untouched), the two must hold the
checkout one after the other, every line the stages print must reach the
run's Prefect log, the run's artifact must hold the evaluation table and a
link to its MLflow parent run, and the MLflow runs must be tagged with the
experiment and hold the registered models. Then `prefect deploy --all`
(prefect.yaml) puts both flows on a process work pool, and a worker runs a
triggered grids run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import memunlearn

from e2e_project import copied_project, experiments  # tests/ is on sys.path under pytest (no __init__.py)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect"]
DEPLOYMENT = "memunlearn-pipeline/default"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ANSWER = 60  # seconds the server may take to answer a request: it shares a busy machine with the runs it serves


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background(command: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    """A long-running process, stopped with SIGINT (Prefect's server and `serve` ignore SIGTERM)."""
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition, timeout: float, what: str, log: Path | None = None):
    """``condition()``'s value once true, asked every second (a request the server did not answer in time is
    asked again) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except httpx.TimeoutException:
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


@pytest.fixture(scope="module")
def server(reproduced_tiny_project, tmp_path_factory):
    """(project, API URL, folder): the tiny project, committed with prefect.yaml, and a fresh Prefect server."""
    root = tmp_path_factory.mktemp("deployment")
    project = root / "project"
    # A baseline run in DVC's cache, as a team's checkout has: each triggered experiment then reruns only what
    # its overrides change (the session's reproduced TINY project, tests/e2e_project.py). The workspace keeps no
    # outputs, so the tests see that experiments leave it alone.
    with copied_project(reproduced_tiny_project, project), pytest.MonkeyPatch.context() as mp:
        shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
        for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
            mp.setenv(key, "test")
        for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
            mp.setenv(key, "test@example.com")
        subprocess.run(["git", "add", "-A"], cwd=project, check=True)
        subprocess.run(["git", "commit", "-qm", "tiny project, baseline run"], cwd=project, check=True)
        for output in [*(project / "data").iterdir(), project / "results"]:
            if output.name != "README.md":  # data/README.md is in git
                shutil.rmtree(output) if output.is_dir() else output.unlink()
        api = f"http://127.0.0.1:{free_port()}/api"
        mp.setenv("PREFECT_API_URL", api)
        mp.setenv("PREFECT_HOME", str(root / "prefect-home"))
        mp.setenv("PYTHONPATH", str(Path(memunlearn.__file__).parents[1]))  # this checkout's code, in every process
        port = api.split(":")[-1].split("/")[0]
        with background([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], root,
                        root / "server.log"):
            wait_for(lambda: _ok(f"{api}/health"), 180, "the Prefect server", root / "server.log")
            yield project, api, root


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment(api: str, name: str) -> dict | None:
    response = httpx.get(f"{api}/deployments/name/{name}", timeout=ANSWER)
    return response.json() if response.status_code == 200 else None


def prefect(project: Path, *args: str) -> str:
    """A `prefect` command, as a user types it; its output."""
    out = subprocess.run([*PREFECT, *args], cwd=project, capture_output=True, text=True, timeout=300,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def trigger(project: Path, deployment: str, *params: str) -> str:
    """`prefect deployment run <deployment> -p ...`; the flow run's id."""
    out = prefect(project, "deployment", "run", deployment, *[a for p in params for a in ("-p", p)])
    return next(line.split()[-1] for line in out.splitlines() if "UUID" in line)



def flow_run(api: str, run_id: str) -> dict:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=ANSWER).json()


def logs(api: str, run_id: str) -> list[dict]:
    body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    found, offset = [], 0
    while True:
        page = httpx.post(f"{api}/logs/filter", json={**body, "offset": offset}, timeout=ANSWER).json()
        found += page
        if len(page) < 200:
            return found
        offset += 200


def when(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def runs(server):
    """The pipeline served as a user would (`--serve`, from the checkout), triggered twice with overrides back to
    back and once with a bad value; all finished, then the serving stopped."""
    project, api, root = server
    before = (project / "params.yaml").read_bytes()
    with background([sys.executable, "-m", "flows.pipeline", "--serve"], project, root / "serve.log"):
        wait_for(lambda: _deployment(api, DEPLOYMENT), 180, "the served deployment", root / "serve.log")
        ids = {
            "vanilla": trigger(project, DEPLOYMENT, 'overrides={"unlearn.strategy": "vanilla"}',
                               "experiment=served-vanilla"),
            # reruns one cheap stage (the claims' margin): what the two runs share is their path, not their work
            "margin": trigger(project, DEPLOYMENT, 'overrides={"claims.on_par_margin": 0.07}'),
            "bad": trigger(project, DEPLOYMENT, 'overrides={"unlearn.strategy": "nope"}'),
        }
        finished = {name: finish(api, run_id) for name, run_id in ids.items()}
    return project, api, before, finished


def finish(api: str, run_id: str) -> dict:
    """The flow run once it has finished and its last log lines have reached the server (the process that ran it
    sends them after the final state: stopping the runner earlier would lose them)."""
    run = wait_for(lambda: (r := flow_run(api, run_id))["state_type"] in FINAL and r, 1500, f"flow run {run_id}")
    wait_for(lambda: any(e["message"].startswith("Finished in state") and e["task_run_id"] is None
                         for e in logs(api, run_id)), 120, f"the last log lines of flow run {run_id}")
    return run


def test_a_triggered_run_is_a_dvc_experiment_and_leaves_params_untouched(runs):
    project, api, before, finished = runs
    assert finished["vanilla"]["state_type"] == "COMPLETED", logs(api, finished["vanilla"]["id"])[-20:]
    assert finished["margin"]["state_type"] == "COMPLETED", logs(api, finished["margin"]["id"])[-20:]
    assert (project / "params.yaml").read_bytes() == before
    # the workspace's outputs are untouched too; only the caches by content, shared with experiments, are written
    data = project / "data"
    assert {p.name for p in data.iterdir()} <= {"README.md", "oracle_cache", "unlearn_cache"}

    found = experiments(project)
    default_name = f"{finished['margin']['name']}-{finished['margin']['id'][:8]}"
    assert {"served-vanilla", default_name} <= set(found)
    params = found["served-vanilla"]["data"]["params"]["params.yaml"]["data"]
    assert params["unlearn"]["strategy"] == "vanilla"
    assert found[default_name]["data"]["params"]["params.yaml"]["data"]["claims"]["on_par_margin"] == 0.07
    tow = found["served-vanilla"]["data"]["metrics"]["metrics/evaluate.json"]["data"]["unlearned"]["tow"]
    assert 0 <= tow <= 1


def test_runs_on_one_checkout_hold_it_one_after_the_other(runs):
    _, api, _, finished = runs
    spans = []
    for name in ("vanilla", "margin"):
        entries = logs(api, finished[name]["id"])
        held = next(when(e) for e in entries if "is this run's until it ends" in e["message"])
        dvc_lines = [when(e) for e in entries if e["message"].startswith(("Running stage", "Stage '"))]
        spans.append((held, max(dvc_lines)))
    first, second = sorted(spans)
    assert first[1] <= second[0], f"DVC work of the two runs overlapped: {spans}"


def test_stage_output_is_streamed_line_by_line_into_the_run_log(runs):
    _, api, _, finished = runs
    messages = [e["message"] for e in logs(api, finished["vanilla"]["id"])]
    assert "Running stage 'unlearn':" in messages and "> python stages/unlearn.py" in messages
    assert any(m.endswith("memunlearn: device: cpu") for m in messages)  # a line the stage itself printed
    assert all("\n" not in m for m in messages if m.startswith(("Running stage", "> python")))


def test_bad_params_fail_before_dvc_with_every_problem_in_the_log(runs):
    project, api, before, finished = runs
    assert finished["bad"]["state_type"] == "FAILED"
    messages = "\n".join(e["message"] for e in logs(api, finished["bad"]["id"]))
    assert "unlearn.strategy" in messages and "nope" in messages and "nothing ran" in messages
    assert "Running stage" not in messages
    assert (project / "params.yaml").read_bytes() == before


def test_each_run_publishes_the_evaluation_and_a_link_to_its_mlflow_parent(runs):
    project, api, _, finished = runs
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {
        "any_": [finished["vanilla"]["id"]]}}}, timeout=ANSWER).json()
    report = next(a for a in artifacts if a["key"] == "memunlearn-evaluation")["data"]
    assert "served-vanilla" in report and "| unlearned " in report and "| retrain " in report
    assert "http://127.0.0.1:5000/#/experiments/" in report

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("memunlearn")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs_ = client.search_runs([experiment.experiment_id], "tags.`memunlearn.dvc_experiment` = 'served-vanilla'")
    parent = next(r for r in runs_ if r.data.tags["memunlearn.stage"] == "pipeline")
    assert parent.info.run_name == "served-vanilla" and parent.info.status == "FINISHED"
    assert f"/runs/{parent.info.run_id}" in report
    children = [r for r in runs_ if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {"unlearn", "evaluate"} <= {r.data.tags["memunlearn.stage"] for r in children}
    assert all(r.info.status == "FINISHED" and r.info.end_time > r.info.start_time for r in children)
    unlearned = client.get_model_version_by_alias("memunlearn-unlearned", "latest")
    assert unlearned.tags["strategy"] in {"vanilla", "rum_f"} and unlearned.tags["forget_digest"]


def test_prefect_yaml_deploys_both_flows_to_a_process_pool_whose_worker_runs_them(server, runs):
    project, api, root = server
    prefect(project, "work-pool", "create", "memunlearn", "--type", "process")
    prefect(project, "--no-prompt", "deploy", "--all")
    grids = _deployment(api, "memunlearn-grids/default")
    assert grids["work_pool_name"] == "memunlearn" and _deployment(api, DEPLOYMENT)["work_pool_name"] == "memunlearn"
    steps = [step["prefect.deployments.steps.set_working_directory"]["directory"] for step in grids["pull_steps"]]
    assert [Path(step).resolve() for step in steps] == [project.resolve()]

    with background([*PREFECT, "worker", "start", "--pool", "memunlearn"], project, root / "worker.log"):
        run = finish(api, trigger(project, "memunlearn-grids/default", "seeds=[0]", "experiment=worker-grids"))
    assert run["state_type"] == "COMPLETED", (root / "worker.log").read_text()[-3000:]
    messages = [e["message"] for e in logs(api, run["id"])]
    assert any(m.startswith("Stage 'grids_report'") or m == "Running stage 'grids_report':" for m in messages)
    assert "worker-grids" in experiments(project)
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}},
                           timeout=ANSWER).json()
    summary = next(a for a in artifacts if a["key"] == "memunlearn-grids-summary")["data"]
    assert "worker-grids" in summary and "| ablations " in summary and "| rum_compare " in summary
