"""End to end: exact memorization on a Dask cluster started the way a user starts one (issue 15, item 5).

`dask scheduler` and two `dask worker --nthreads 1` processes run as separate commands on 127.0.0.1 (the
README's cluster commands); `dvc repro memorize` with ``MEMUNLEARN_RUNNER=dask`` and
``MEMUNLEARN_DASK_ADDRESS`` sends the subset models to them. The tests, in order:

- the cluster's scores equal, bit for bit, a local in-process run of the same models (one torch thread
  everywhere: ``memorize.threads_per_worker: 1``), and so do the stored models;
- growing K on the cluster and SIGKILLing one worker (its whole process group: a lost machine) while it
  holds a job: the scheduler reruns that job on the other worker (its story says so), the stage finishes
  with all K models, every stored file passes `memunlearn store verify`, and the scores still equal the
  local run.

With no PREFECT_API_URL, the stage and each worker start a temporary Prefect server (as a user's would).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from e2e_project import REPO, TINY, dvc, set_params, tiny_project  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e

K, GROWN = 3, 7  # first run, then grown on the cluster: 4 new one-model jobs for 2 workers
PARAMS = {**TINY, "memorize": {"num_models": K, "threads_per_worker": 1}}  # one torch thread: bit-identical
DASK = Path(sys.executable).parent / "dask"
# The stage and each worker start a temporary Prefect server (no PREFECT_API_URL); on a loaded 2-core machine
# one can take longer than Prefect's default 20 s to answer
SLOW_START = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop ``process`` and everything it started (its own session): ``sig``, then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers: a worker's temporary Prefect server
    except ProcessLookupError:
        pass
    process.wait()


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(condition, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """{"address", "workers": {name: Popen}, "logs"}: `dask scheduler` and two `dask worker`s on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, **SLOW_START}
    # the workers unpickle memunlearn's jobs: they import the memunlearn under test, as the stage does
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    scheduler_file = tmp / "scheduler.json"
    processes: dict[str, subprocess.Popen] = {}
    logs = [tmp / "scheduler.log"]
    try:
        processes["scheduler"] = start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                        "--no-dashboard", "--scheduler-file", str(scheduler_file)], logs[0], env)
        address = wait_for(lambda: scheduler_file.exists() and json.loads(scheduler_file.read_text())["address"],
                           60, "the scheduler's address", logs)
        for name in ("worker-1", "worker-2"):
            logs.append(tmp / f"{name}.log")
            (tmp / name).mkdir()
            worker_env = {**env, "PREFECT_HOME": str(tmp / name)}  # a machine of its own: its own temporary server
            processes[name] = start([str(DASK), "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                     "--no-dashboard", "--name", name], logs[-1], worker_env)
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
        yield {"address": address, "workers": {n: p for n, p in processes.items() if n != "scheduler"},
               "logs": logs}
    finally:
        for process in reversed(processes.values()):  # workers first: they stop on SIGTERM
            stop(process)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with tiny_project(tmp_path_factory.mktemp("project"), PARAMS) as root, pytest.MonkeyPatch.context() as mp:
        for name, value in SLOW_START.items():
            mp.setenv(name, value)
        dvc(root, "repro", "prepare")
        yield root


@pytest.fixture(scope="module")
def local_runs(project):
    """The GROWN subset models trained here, in this process, from the project's prepared data and params."""
    from memunlearn.config import from_params
    from memunlearn.data import load_info, load_split
    from memunlearn.memorization import ExactConfig, train_subset_models
    from memunlearn.training.recipe import recipe_for

    params = yaml.safe_load((project / "params.yaml").read_text())
    recipe = recipe_for(params, "subset")  # memorize.recipe over train, as the memorize stage trains
    config = from_params(ExactConfig, {**params["memorize"], "num_models": GROWN}, "memorize")
    prepared = project / "data/prepared"
    train, test = load_split(prepared / "train.npz"), load_split(prepared / "test.npz")
    runs = train_subset_models(train, test, load_info(prepared / "meta.json"), recipe, config,
                               torch.device("cpu")).runs
    return runs, train.example_ids.numpy()


def cluster_env(cluster) -> dict[str, str]:
    return {**os.environ, "MEMUNLEARN_RUNNER": "dask", "MEMUNLEARN_DASK_ADDRESS": cluster["address"]}


def store_files(root: Path) -> list[Path]:
    return sorted((root / "data/memorize_store").glob("*/model_*.npz"))


def assert_equals_local(root: Path, local_runs, k: int) -> None:
    """scores.parquet and the store hold exactly what the local run of models 0..k-1 gives."""
    from memunlearn.memorization import memorization_scores
    from memunlearn.memorization.store import read_model

    runs, example_ids = local_runs
    expected = memorization_scores(runs[:k], example_ids).set_index("example_id")
    got = pd.read_parquet(root / "data/memorize/scores.parquet").set_index("example_id").loc[expected.index]
    for column in ("mem", "mem_prob", "n_in"):
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    files = store_files(root)
    assert [f.name for f in files] == [f"model_{i:05d}.npz" for i in range(k)]
    for path, run in zip(files, runs):
        stored = read_model(path, run.index)  # checks the file's checksum
        for name in ("mask", "train_true_prob", "test_true_prob"):
            np.testing.assert_array_equal(getattr(stored, name), getattr(run, name), err_msg=f"{path.name} {name}")


def memorize_metrics(root: Path) -> dict:
    return json.loads((root / "metrics/memorize.json").read_text())


def verify_store(root: Path) -> None:
    """`memunlearn store verify`: every file's checksum and index."""
    from memunlearn.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["store", "verify", "--root", str(root / "data/memorize_store")])
    assert exit.value.code == 0


def test_dvc_repro_on_the_cluster_equals_the_local_run(cluster, project, local_runs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMUNLEARN_RUNNER", "dask")
        mp.setenv("MEMUNLEARN_DASK_ADDRESS", cluster["address"])
        out = dvc(project, "repro", "memorize")
    assert "Running stage 'memorize'" in out.stdout
    assert "Connecting to an existing Dask cluster" in out.stderr  # not a temporary LocalCluster
    metrics = memorize_metrics(project)
    assert (metrics["models_trained"], metrics["models_reused"]) == (K, 0)
    assert_equals_local(project, local_runs, K)
    verify_store(project)
    workers_logs = "".join(log.read_text() for log in cluster["logs"][1:])
    assert workers_logs.count("Task run 'subset models") >= K  # the models trained on the workers


def test_a_killed_worker_loses_only_its_job(cluster, project, local_runs):
    """SIGKILL a worker while it trains a job: the job reruns on the other worker; no stored model is lost."""
    from distributed import Client

    set_params(project, {"memorize": {"num_models": GROWN}})
    log = project / "grown.log"
    with log.open("w") as out:
        repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "memorize"], cwd=project,
                                 env=cluster_env(cluster), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        with Client(cluster["address"], timeout=30) as client:
            def worker_in_flight():
                """(worker name, task key) once a new model is stored and a worker trains another job."""
                if len(store_files(project)) <= K:
                    return None
                names = {address: w["name"] for address, w in client.scheduler_info()["workers"].items()}
                for address, keys in client.processing().items():
                    if keys and address in names:
                        return names[address], keys[0]
                return None

            victim, key = _kill_when_in_flight(repro, worker_in_flight, log, cluster)
            repro.wait(timeout=300)
            story = client.run_on_scheduler(lambda dask_scheduler: [(s[1], s[2], str(s[4]))
                                                                    for s in dask_scheduler.story(key)])
    finally:
        stop(repro, signal.SIGINT, timeout=60)
    assert repro.returncode == 0, log.read_text()[-4000:]
    assert cluster["workers"][victim].poll() is not None  # it is dead
    # the victim's job went back to the scheduler when its worker died (running, or done with its result still
    # on the worker: lost either way), and ran again on the other worker
    lost = next((i for i, (start, _, why) in enumerate(story) if "worker-cleanup" in why), None)
    assert lost is not None and story[lost][0] in ("processing", "memory"), story
    assert ("processing", "memory") in [(start, end) for start, end, _ in story[lost:]], story
    metrics = memorize_metrics(project)
    assert (metrics["models_trained"], metrics["models_reused"]) == (GROWN - K, K)
    verify_store(project)
    assert_equals_local(project, local_runs, GROWN)


def _kill_when_in_flight(repro, worker_in_flight, log, cluster):
    def found():
        if repro.poll() is not None:
            raise AssertionError(f"the run ended before a worker could be killed:\n{log.read_text()[-3000:]}")
        return worker_in_flight()

    victim, key = wait_for(found, 300, "a job in flight after a stored model", [log, *cluster["logs"]])
    os.killpg(cluster["workers"][victim].pid, signal.SIGKILL)  # the worker, its nanny, its Prefect server
    cluster["workers"][victim].wait()
    return victim, key
