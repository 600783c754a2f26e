"""End to end: the subset-model store travels through a DVC remote and into experiments (issue 12, item 2).

Real git and DVC on tiny copies of the project, in order: clone A trains K models and pushes to a
local-directory remote; clone B pulls and reproduces with none trained, grows K (one trained) and pushes;
A pulls and holds them all; a fresh clone grows K with `dvc repro --pull --allow-missing` (only the new
model trained, the rest fetched from the remote); a `--temp` experiment finds the store, and two queued
ones find it with its models and each other's. `models_trained` in metrics/memorize.json counts what each
step trained.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from e2e_project import TINY, dvc, ran_stages, set_params, tiny_project  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e

K = TINY["memorize"]["num_models"]  # 3


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def memorize_metrics(root: Path) -> dict:
    return json.loads((root / "metrics/memorize.json").read_text())


def stored_models(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "data/memorize_store").glob("*/model_*.npz"))


def clone(world: dict, name: str) -> Path:
    root = world["tmp"] / name
    subprocess.run(["git", "clone", "-q", "-b", "main", str(world["origin"]), str(root)], check=True)
    git(root, "config", "user.email", f"{name}@example.com")
    git(root, "config", "user.name", name)
    return root


def publish(root: Path, message: str) -> None:
    """What a teammate does after a run: commit params, dvc.lock and metrics, push to git and to DVC's remote."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    git(root, "push", "-q", "origin", "HEAD:main")
    dvc(root, "push")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A bare git origin, a local-directory DVC remote, and clone A holding the tiny project."""
    tmp = tmp_path_factory.mktemp("sharing")
    origin, remote = tmp / "origin.git", tmp / "remote"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    remote.mkdir()
    (tmp / "A").mkdir()
    with tiny_project(tmp / "A") as a:
        git(a, "config", "user.email", "a@example.com")
        git(a, "config", "user.name", "A")
        dvc(a, "remote", "add", "-d", "shared", str(remote))
        git(a, "add", "-A")
        git(a, "commit", "-q", "-m", "tiny project")
        git(a, "branch", "-M", "main")
        git(a, "remote", "add", "origin", str(origin))
        yield {"tmp": tmp, "origin": origin, "remote": remote, "A": a}


def test_clone_a_trains_k_models_and_pushes_them(world):
    a = world["A"]
    dvc(a, "repro", "memorize")
    assert memorize_metrics(a)["models_trained"] == K and len(stored_models(a)) == K
    publish(a, "K models")
    assert "metrics/memorize.json" in git(a, "ls-files", "metrics")  # metrics are versioned in git
    assert len([p for p in world["remote"].rglob("*") if p.is_file()]) > K  # the models, their manifest, data


def store_hash(root: Path) -> str:
    """The md5 dvc.lock records for the memorize stage's data/memorize_store."""
    import yaml

    outs = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["memorize"]["outs"]
    return next(out["md5"] for out in outs if out["path"] == "data/memorize_store")


def test_a_fresh_clone_that_trains_the_same_models_records_the_same_store_hash(world):
    """Issue 28 item 4: store files hold no wall-clock time, so a clone that trains A's K models itself (no
    remote to fetch them from) writes the same bytes, and its dvc.lock the same hash: no conflict, one copy."""
    twin = clone(world, "twin")
    dvc(twin, "remote", "remove", "shared")  # train, do not fetch
    dvc(twin, "repro", "memorize")
    assert memorize_metrics(twin)["models_trained"] == K
    assert store_hash(twin) == store_hash(world["A"])  # (metrics/memorize.json differs: it holds the timing)


def test_clone_b_pulls_and_reproduces_with_no_model_trained(world):
    b = world["B"] = clone(world, "B")
    assert memorize_metrics(b)["models_trained"] == K  # A's metrics came with git, before any pull
    dvc(b, "pull", "--with-deps", "memorize")  # only prepare and memorize ran here
    assert stored_models(b) == stored_models(world["A"])
    assert ran_stages(dvc(b, "repro", "memorize").stdout) == []  # but the always-run sources
    dvc(b, "repro", "--force", "--single-item", "memorize")
    assert (memorize_metrics(b)["models_trained"], memorize_metrics(b)["models_reused"]) == (0, K)


def test_clone_b_grows_k_training_only_the_new_model_and_pushes(world):
    b = world["B"]
    set_params(b, {"memorize": {"num_models": K + 1}})
    dvc(b, "repro", "memorize")
    assert (memorize_metrics(b)["models_trained"], memorize_metrics(b)["models_reused"]) == (1, K)
    diff = json.loads(dvc(b, "metrics", "diff", "--json").stdout)  # against the committed metrics
    assert diff["metrics/memorize.json"]["num_models"] == {"old": K, "new": K + 1, "diff": 1}
    publish(b, "K + 1 models")


def test_clone_a_pulls_and_holds_every_model(world):
    a = world["A"]
    git(a, "pull", "-q", "origin", "main")
    dvc(a, "pull", "--with-deps", "memorize")
    assert len(stored_models(a)) == K + 1 and stored_models(a) == stored_models(world["B"])
    assert json.loads(dvc(a, "status", "memorize", "--json").stdout) == {}
    dvc(a, "repro", "--force", "--single-item", "memorize")
    assert (memorize_metrics(a)["models_trained"], memorize_metrics(a)["models_reused"]) == (0, K + 1)
    git(a, "checkout", "--", "metrics")  # the forced rerun's timings; the committed state again


def test_repro_pull_allow_missing_continues_a_teammates_run_training_only_new_models(world):
    c = clone(world, "C")
    assert ran_stages(dvc(c, "repro", "--pull", "--allow-missing", "memorize").stdout) == []  # all done
    set_params(c, {"memorize": {"num_models": K + 2}})
    # memorize changed: DVC pulls its deps (data/prepared), never its persistent output; the stage fetches the
    # models dvc.lock records from the remote itself and trains only the new one
    dvc(c, "repro", "--pull", "--allow-missing", "memorize")
    assert (memorize_metrics(c)["models_trained"], memorize_metrics(c)["models_reused"]) == (1, K + 1)


def experiment_metrics(root: Path, name: str) -> dict:
    """metrics/memorize.json of experiment ``name`` (`dvc exp show --json`)."""
    def find(node):
        if isinstance(node, dict):
            if node.get("name") == name and "data" in node:
                return node["data"]["metrics"]["metrics/memorize.json"]["data"]
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                if (found := find(child)) is not None:
                    return found
        return None

    found = find(json.loads(dvc(root, "exp", "show", "--json").stdout))
    assert found is not None, f"no experiment {name!r}"
    return found


def test_a_temp_experiment_finds_the_store_and_leaves_the_workspace_alone(world):
    """(The queued experiments below find this one's models: experiments find each other's.)"""
    a = world["A"]
    dvc(a, "exp", "run", "--temp", "-n", "k-plus-3", "-S", f"memorize.num_models={K + 3}", "memorize")
    assert experiment_metrics(a, "k-plus-3")["models_trained"] == 2  # K + 1 checked out from the cache
    assert len(stored_models(a)) == K + 1  # a --temp experiment leaves the workspace alone


def queue_status(root: Path) -> dict[str, str]:
    """{experiment name: status} from `dvc queue status` (Queued, Running, Success, Failed)."""
    lines = dvc(root, "queue", "status").stdout.splitlines()
    return {fields[1]: fields[-1] for fields in (line.split() for line in lines[1:])
            if len(fields) >= 4 and fields[-1] in {"Queued", "Running", "Success", "Failed"}}


def test_queued_experiments_find_the_store_and_each_others_models(world):
    """`dvc exp run --queue` runs in a temporary copy of the repo that a queue worker (`dvc queue start`)
    makes: each finds the models of the baseline and of every experiment that ran before it."""
    a = world["A"]
    names = {"q-k-plus-4": K + 4, "q-k-plus-5": K + 5}  # from the K + 1 baseline; the --temp one made K + 3
    for name, k in names.items():
        dvc(a, "exp", "run", "--queue", "-n", name, "-S", f"memorize.num_models={k}", "memorize")
    assert set(queue_status(a)) >= set(names)
    dvc(a, "queue", "start")  # one worker: queued experiments run one after another, in order
    deadline = time.monotonic() + 900
    while (statuses := {n: s for n, s in queue_status(a).items() if n in names}) and \
            any(s in ("Queued", "Running") for s in statuses.values()) and time.monotonic() < deadline:
        time.sleep(2)
    logs = {name: dvc(a, "queue", "logs", name, check=False).stdout for name in names}
    assert statuses == {name: "Success" for name in names}, f"{statuses}\n{logs}"
    assert all("Running stage 'memorize'" in log for log in logs.values())
    assert len(stored_models(a)) == K + 1  # the workspace is untouched until an experiment is applied
    assert experiment_metrics(a, "q-k-plus-4")["models_trained"] == 1  # K + 3 restored: the --temp one's models
    assert experiment_metrics(a, "q-k-plus-5")["models_trained"] == 1  # and the first queued one's model
    applied = dvc(a, "exp", "apply", "q-k-plus-5", check=False)  # its params, dvc.lock, metrics; outputs from the cache
    if applied.returncode:  # this world ran only prepare and memorize: the other stages' outputs have no hash
        failed = applied.stderr.partition("Checkout failed for following targets:")[2]
        assert failed and "memorize" not in failed and "prepared" not in failed, applied.stderr
    assert memorize_metrics(a)["num_models"] == K + 5 and len(stored_models(a)) == K + 5
    assert json.loads(dvc(a, "status", "memorize", "--json").stdout) == {}
