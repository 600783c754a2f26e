"""Exact-memorization jobs through Prefect task runners: local processes or a Dask cluster.

The only library module that imports Prefect (docs/architecture.md rule 6), and only the memorize stage
imports it, only when asked for: ``memorization/__init__.py`` does not import it.

The memorize stage stays the DVC entry point (its outputs, cache and per-model
store are unchanged); with ``MEMUNLEARN_RUNNER=prefect`` or ``dask`` it hands
the missing subset models to ``prefect_runner``, its one way in, which runs one
Prefect task per job (``memorize.stack`` models) inside a flow run:

- ``prefect``: ``MEMUNLEARN_WORKERS`` local processes (``ProcessPoolTaskRunner``),
  or this process when it is 1;
- ``dask``: a Dask cluster through prefect-dask's ``DaskTaskRunner`` at
  ``MEMUNLEARN_DASK_ADDRESS`` (``tcp://host:8786``), or a temporary
  ``LocalCluster`` of ``MEMUNLEARN_WORKERS`` processes when it is unset.

Each finished job comes back to the stage's process, which saves its models
to the store at once: a lost worker or a killed run loses only jobs in flight.
Jobs carry everything they need (data, recipe, seeds), so a worker needs only
memunlearn installed; model k is the same model on any runner.
"""
from __future__ import annotations

from typing import Sequence

from prefect import flow, task
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from .engine import JobDone, Runner, SubsetJob, SubsetModelOutputs, run_subset_job
from .exact import Execution


@task(retries=1, retry_delay_seconds=2, task_run_name="subset models {job.indices}")
def train_job(job: SubsetJob) -> list[SubsetModelOutputs]:
    return run_subset_job(job)


def task_runner(config: Execution) -> TaskRunner:
    """The Prefect task runner that ``config.runner`` / ``workers`` / ``dask_address`` ask for."""
    if config.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if config.dask_address:
            return DaskTaskRunner(address=config.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": config.workers, "threads_per_worker": 1,
                                              "processes": True, "host": "127.0.0.1", "dashboard_address": None})
    if config.workers > 1:
        return ProcessPoolTaskRunner(max_workers=config.workers)
    return ThreadPoolTaskRunner(max_workers=1)


class _InThisProcess:
    """The jobs and the ``done`` callback, for the flow function in this process only.

    Prefect ships the flow object, closure included, in the context of every task it submits; a closure
    over ``done`` would drag the stage's callback (its progress bar holds the open stderr: "Cannot pickle
    files that are not opened for reading") and every job's data to each worker. Pickled, this holder is
    empty: the workers run ``train_job``, never the flow function.
    """

    def __init__(self, jobs: Sequence[SubsetJob] = (), done: JobDone | None = None):
        self.jobs, self.done = list(jobs), done

    def __reduce__(self):
        return _InThisProcess, ()


def prefect_runner(config: Execution) -> Runner:
    """A memorization ``Runner`` (engine.py) that runs jobs as tasks of one Prefect flow run."""
    def run(jobs: Sequence[SubsetJob], done: JobDone) -> None:
        if not jobs:
            return
        here = _InThisProcess(jobs, done)

        @flow(name="memunlearn-memorize", task_runner=task_runner(config), log_prints=True)
        def subset_models() -> int:
            futures = [train_job.submit(job) for job in here.jobs]
            for future in as_completed(futures):
                here.done(future.result())  # back in this process: the store saves it now
            return len(futures)

        subset_models()
    return run
