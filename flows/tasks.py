"""What the pipeline and grids flows share: the DVC project, stage order, params checked before any DVC work,
one run at a time per checkout, the Prefect tasks that run DVC with its output streamed into the run's logs
(a stage in the workspace, or the whole run as a DVC experiment), the MLflow parent run of one flow run, and
the run's Prefect artifact.

Absolute imports only in this package (``from flows.tasks import ...``): a served deployment loads a flow's
file by path (Prefect's entrypoint) with the project root, its working directory, on ``sys.path``.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import networkx as nx
import pandas as pd
import yaml
from prefect import get_run_logger, task
from prefect.runtime import flow_run
from tqdm import tqdm

from memunlearn.config import dotted_leaves
from memunlearn.tracking import (EXPERIMENT_TAG, TrackingTarget, close_parent, git_commit, open_parent, run_link,
                                 store_location)

STAGE_LINE = re.compile(r"^(?:Running stage '(?P<ran>[^']+)'|Stage '(?P<cached>[^']+)' is cached"
                        r"|Stage '(?P<skipped>[^']+)' didn't change)")


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


def uncached_outputs(repo_dir: str) -> list[str]:
    """Outputs that only the workspace holds (``cache: false`` and not in git): an experiment's temporary copy
    gets them copied in, or their stages would recompute them from nothing."""
    with in_repo(repo_dir) as repo:
        paths = [str(out.def_path) for stage in repo.index.stages for out in stage.outs if not out.use_cache]
    in_git = subprocess.run(["git", "ls-files", "--", *paths], cwd=repo_dir, capture_output=True, text=True).stdout
    tracked = {Path(line) for line in in_git.splitlines()}
    return [path for path in dict.fromkeys(paths) if (Path(repo_dir) / path).exists()
            and not any(file == Path(path) or Path(path) in file.parents for file in tracked)]


def stage_order(repo_dir: str, target: str | None = None) -> list[str]:
    """The pipeline's stage names, upstream first (DVC's graph), ties in dvc.yaml order; with ``target``, only
    that stage and the stages it needs (e.g. ``summary``: the text path, README "Text")."""
    with in_repo(repo_dir) as repo:
        position = {stage: i for i, stage in enumerate(repo.index.stages)}
        graph = repo.index.graph.reverse(copy=False)  # DVC's edges point from a stage to its deps
        ordered = nx.lexicographical_topological_sort(graph, key=position.get)
        names = [stage.name for stage in ordered if getattr(stage, "name", None)]
        if target is None:
            return names
        found = [stage for stage in repo.index.stages if getattr(stage, "name", None) == target]
        if not found:
            raise ValueError(f"unknown target stage {target!r}; stages: {names}")
        needed = {s.name for s in nx.ancestors(graph, found[0]) if getattr(s, "name", None)} | {target}
        return [name for name in names if name in needed]


# ---- params ----------------------------------------------------------------------

def preset_overrides(path: str | Path) -> dict[str, Any]:
    """A params preset file (e.g. params/text.yaml) as dotted overrides: one per leaf key."""
    return dotted_leaves(yaml.safe_load(Path(path).read_text()) or {})


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs -> {key: value}, each value read as YAML."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)  # "0.1" -> 0.1, "[1, 2]" -> [1, 2], "finetune" -> "finetune"
    return out


def with_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted ``overrides`` set (missing blocks created), as `dvc exp run -S` sets them."""
    out = copy.deepcopy(dict(params))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            if not isinstance(node.get(key, {}), dict):
                raise ValueError(f"override {dotted!r}: {key!r} is not a section")
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def check_params(repo_dir: str, overrides: Mapping[str, Any] | None = None) -> None:
    """Check all of params.yaml, overrides applied, through the typed configs before DVC touches anything (DVC
    deletes a stage's outputs before running it); every problem in one ValueError, one line each."""
    from memunlearn.params import check_params as problems_of

    from memunlearn.sources import rooted

    params = with_overrides(yaml.safe_load((Path(repo_dir) / "params.yaml").read_text()) or {}, overrides or {})
    if isinstance(params.get("data"), dict) and isinstance(params["data"].get("path"), str):
        params["data"]["path"] = rooted(params["data"]["path"], repo_dir)  # the stages read it from the checkout
    problems = problems_of(params)
    if problems:
        given = f" with overrides {dict(overrides)}" if overrides else ""
        raise ValueError(f"params.yaml{given} has {len(problems)} problem(s); nothing ran:\n" + "\n".join(problems))


def set_param_args(overrides: Mapping[str, Any]) -> list[str]:
    """`dvc exp run` arguments for ``overrides``: ``-S ++key=value`` (Hydra syntax; ``++`` adds a key
    params.yaml lacks or overrides one it has)."""
    return [arg for key, value in overrides.items() for arg in ("-S", f"++{key}={_hydra(value)}")]


def _hydra(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_hydra(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"  # quoted: stays a string


# ---- one run at a time per checkout ------------------------------------------------

def checkout_limit(repo_dir: str) -> str:
    """The Prefect global concurrency limit (1 slot) of one checkout."""
    return f"memunlearn-checkout-{hashlib.sha1(str(Path(repo_dir).resolve()).encode()).hexdigest()[:12]}"


@contextmanager
def one_run_per_checkout(repo_dir: str) -> Iterator[None]:
    """Hold the checkout's slot: a later flow run on the same checkout waits here until this one ends (two DVC
    runs in one workspace would fail on DVC's lock)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = checkout_limit(repo_dir)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another flow run created it first
                pass
    get_run_logger().info("waiting for checkout %s (concurrency limit %s: one run at a time)", repo_dir, name)
    with concurrency(name, occupy=1, strict=True):
        get_run_logger().info("checkout %s is this run's until it ends", repo_dir)
        yield


# ---- DVC, streamed ---------------------------------------------------------------------

def stream(command: list[str], cwd: str, env: Mapping[str, str], on_line: Callable[[str], None]) -> None:
    """Run ``command``, handing each line of its output (stdout and stderr) to ``on_line`` as it comes; a failure
    raises RuntimeError with the command's own error lines."""
    errors: list[str] = []
    with subprocess.Popen(command, cwd=cwd, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for raw in process.stdout:  # bytes split at \n only: a progress bar's \r redraws stay on one line
            line = raw.decode(errors="replace").rstrip("\r\n").split("\r")[-1].rstrip()  # the bar's last state
            if line:
                on_line(line)
                if line.startswith(("error: ", "ERROR: ")):
                    errors.append(line)
    if process.returncode:
        detail = "; ".join(errors) or f"exit status {process.returncode}"
        raise RuntimeError(f"`{' '.join(command[2:])}` failed: {detail}")


def stage_outcome(line: str) -> tuple[str, bool] | None:
    """(stage, ran) if ``line`` is DVC's note on a stage: ran (or restored from its run cache) or unchanged."""
    found = STAGE_LINE.match(line)
    if not found:
        return None
    return (found["ran"], True) if found["ran"] else (found["cached"], True) if found["cached"] else (
        found["skipped"], False)


def progress(stages: list[str], total: int | None = None):
    """A progress bar over a flow's stages, grid cells included (shown on a terminal only)."""
    return tqdm(stages, "stages", total=total, unit="stage", disable=None)


def run_dvc(repo_dir: str, args: list[str], env: Mapping[str, str], stages: list[str]) -> dict[str, bool]:
    """Run ``dvc <args>``, every line into the Prefect run's log; return {stage: ran} for the stages DVC named
    (``stages``: those it may name, for the progress bar when there are several)."""
    logger = get_run_logger()
    ran: dict[str, bool] = {}
    bar = progress([], total=len(stages)) if len(stages) > 1 else None

    def on_line(line: str) -> None:
        logger.info(line)
        outcome = stage_outcome(line)
        if outcome and outcome[0] not in ran:
            ran[outcome[0]] = outcome[1]
            if bar is not None:
                bar.update()
        elif outcome:
            ran[outcome[0]] |= outcome[1]

    try:
        stream([sys.executable, "-m", "dvc", *args], repo_dir, env, on_line)
    finally:
        if bar is not None:
            bar.close()
    return ran


@task(retries=1, retry_delay_seconds=5, task_run_name="dvc repro {stage}")
def reproduce_stage(repo_dir: str, stage: str, force: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Reproduce one stage in the workspace if DVC finds it changed (or ``force``); True if it ran or was
    restored from DVC's run cache."""
    args = ["repro", "--single-item", *(["--force"] if force else []), stage]
    return run_dvc(repo_dir, args, env or {}, [stage]).get(stage, False)


@task(task_run_name="dvc exp run {name}")
def run_experiment(repo_dir: str, name: str, overrides: Mapping[str, Any], targets: list[str],
                   stages: list[str], env: Mapping[str, str] | None = None) -> dict[str, bool]:
    """Run ``targets`` (and what they need) as DVC experiment ``name`` with ``overrides``, in a temporary copy
    of the checkout (``--temp``; the uncached outputs copied in): the checkout's params.yaml and outputs stay
    untouched; `dvc exp show` lists the run, `dvc exp apply <name>` brings it into the workspace.
    Returns {stage: ran}."""
    copies = [arg for path in uncached_outputs(repo_dir) for arg in ("--copy-paths", path)]
    args = ["exp", "run", "--temp", "--name", name, *copies, *set_param_args(overrides), *targets]
    ran = run_dvc(repo_dir, args, env or {}, stages)
    get_run_logger().info("DVC experiment %s: %d stage(s) ran, the rest were unchanged; `dvc exp show` lists it",
                          name, sum(ran.values()))
    return ran


def read_output(repo_dir: str, path: str, experiment: str | None = None) -> str | None:
    """An output's text: from the workspace, or from DVC experiment ``experiment``; None if there is none."""
    if experiment is None:
        file = Path(repo_dir) / path
        return file.read_text() if file.exists() else None
    import dvc.api

    try:
        return dvc.api.read(path, repo=repo_dir, rev=experiment)
    except Exception:  # noqa: BLE001 - not produced by that experiment (a failed or partial run)
        return None


# ---- one flow run: its name, its MLflow parent run, its artifact ---------------------------

def experiment_name() -> str:
    """A DVC experiment name for this flow run: its Prefect name and id (unique, a valid git ref)."""
    return f"{flow_run.name or 'run'}-{(flow_run.id or '0' * 8)[:8]}"


def flow_target(repo_dir: str, key: str, name: str, experiment: str | None) -> TrackingTarget:
    """The MLflow store the stages of ``repo_dir`` log to (MLFLOW_TRACKING_URI, else the checkout's own)."""
    uri, artifacts = store_location(Path(repo_dir), os.environ.get("MLFLOW_TRACKING_URI"))
    tags = {"git_commit": git_commit(Path(repo_dir)), **({EXPERIMENT_TAG: experiment} if experiment else {})}
    return TrackingTarget(uri, artifacts, os.environ.get("MLFLOW_EXPERIMENT_NAME", "memunlearn"), key, name, tags)


@contextmanager
def mlflow_parent(repo_dir: str, name: str, experiment: str | None) -> Iterator[tuple[dict[str, str], str]]:
    """Open this flow run's MLflow parent run, named ``name``; yield (the env that puts every stage under it,
    its link); close it FINISHED or FAILED with the flow."""
    key = f"prefect-{flow_run.id or os.getpid()}"
    target = flow_target(repo_dir, key, name, experiment)
    parent = open_parent(target)
    ok = False
    try:
        yield {"MEMUNLEARN_RUN_GROUP": key, "MEMUNLEARN_RUN_NAME": name}, run_link(target, parent)
        ok = True
    finally:
        close_parent(target, parent, ok)


def publish(key: str, title: str, table: pd.DataFrame | None, mlflow_link: str, experiment: str | None) -> None:
    """The flow run's Prefect artifact: ``table``, the DVC experiment and a link to the MLflow parent run."""
    from prefect.artifacts import create_markdown_artifact

    lines = [f"## {title}", ""]
    if experiment:
        lines += [f"DVC experiment `{experiment}`: `dvc exp show` compares it, `dvc exp apply {experiment}` "
                  f"brings it into the workspace.", ""]
    lines += [f"MLflow parent run: [{mlflow_link or 'not recorded'}]({mlflow_link})", ""]
    lines += [table.to_markdown(index=False, floatfmt=".4g") if table is not None and len(table) else "(no table)"]
    create_markdown_artifact("\n".join(lines), key=key, description=title)
