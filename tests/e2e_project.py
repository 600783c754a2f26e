"""The tiny DVC project the end-to-end modules run on, and copies of one reproduced once per session.

Each stage of a `dvc repro` pays seconds of fixed cost (process start, torch import, an MLflow run, DVC
hashing), so reproducing TINY's stages from scratch costs minutes on 2 cores. The pipeline, grids and
deployments modules therefore start from one session-wide reproduction (``reproduced_tiny_project`` in
conftest.py): each gets its own self-contained copy (workspace, git, `.dvc/cache`, MLflow store) that it
may change, and the record of what that first `dvc repro` ran.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["prepare", "train", "memorize", "proxies", "proxy_study", "partition", "oracle", "unlearn", "evaluate",
          "summary", "forgetting_quality", "grids_evaluate", "grids_report", "claims", "figures", "tune"]
GRID_STAGES = ["grids"]
ALWAYS_RUN = ["sources"]  # always_changed: runs on every repro; its outputs unchanged, nothing after it reruns
GRID_RUNS = [  # TINY's grids: one forget set and one cell each, each an MLflow run of its grid's stage
    "ablations_oracle@exact_prob-high-0", "ablations_cell@neggrad_plus-exact_prob-high-rum_f-0",
    "levels_oracle@exact_prob-low-0", "levels_cell@neggrad_plus-exact_prob-low-vanilla-0",
    "rum_compare_oracle@confidence-mix-0", "rum_compare_cell@neggrad_plus-confidence-mix-rum_f-0",
    "entanglement_oracle@entanglement-high-0", "entanglement_cell@neggrad_plus-entanglement-high-vanilla-0",
    "levels_clean_oracle@exact_prob-high-0", "levels_clean_cell@neggrad_plus-exact_prob-high-vanilla-0",
    "tuned_oracle@exact_prob-mix-0", "tuned_cell@neggrad_plus-exact_prob-mix-rum_f-0"]
ONE_CELL = {"methods": ["neggrad_plus"], "seeds": [0], "partition": {"size": 30}}
DIGITS = "digits"  # TINY's data.path: the folder of PNGs ``write_digits`` writes into each tiny project
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TINY = {
    "data": {"dataset": "image_folder", "path": DIGITS, "max_train": 0, "max_test": 0, "noise_fraction": 0.05},
    "train": {"epochs": 2, "lr_milestones": [], "device": "cpu"},
    "memorize": {"num_models": 3, "influence_top": 5},
    "proxies": {"top_n": 20, "holdout_max_epochs": 2},
    "partition": {"size": 30},
    "methods": {"finetune": {"epochs": 1}, "neggrad_plus": {"epochs": 1}},
    "evaluate": {"mia_max_per_class": 200},
    "ablations": {**ONE_CELL, "group_scores": ["exact_prob"], "kinds": ["high"], "strategies": ["rum_f"]},
    "levels": {**ONE_CELL, "group_scores": ["exact_prob"], "kinds": ["low"], "strategies": ["vanilla"]},
    "rum_compare": {**ONE_CELL, "group_scores": ["confidence"], "kinds": ["mix"], "strategies": ["rum_f"]},
    "entanglement": {**ONE_CELL, "group_scores": ["entanglement"], "kinds": ["high"], "strategies": ["vanilla"]},
    "levels_clean": {**ONE_CELL, "group_scores": ["exact_prob"], "kinds": ["high"], "strategies": ["vanilla"],
                     "partition": {"size": 30, "exclude_planted_noise": True}},
    "forgetting_quality": {"copies": 3},
    "tuned": {**ONE_CELL, "group_scores": ["exact_prob"], "kinds": ["mix"], "strategies": ["rum_f"],
              "first_method_only": []},
    "tune": {"trials": 2, "spaces": {"neggrad_plus": {"epochs": {"low": 1, "high": 2}}}},  # rum_f: 2 trials
}


def write_digits(folder: Path) -> None:
    """TINY's data as a user's folder of PNGs: the 500 training and 200 test digits that ``mnist_embedded``
    subsampled for it (seed 0), as ``<folder>/{train,test}/<d>-<name>/<row>.png`` (class folders "0-zero",
    "1-one", ...: sorted, label d) with an ``ids.csv`` naming each file's owner id ``digit-<row>`` (``row``: its
    row in the shipped array; the example ids number the files in path order, so no owner id is one)."""
    from PIL import Image

    from memunlearn.data.prepare import PrepareConfig, prepare

    data = prepare(PrepareConfig(max_train=500, max_test=200), folder)  # no noise, no validation: the raw digits
    lines = ["path,id"]
    for part, split in (("train", data.train), ("test", data.test)):
        for image, label, row in zip(split.images.numpy(), split.labels.tolist(), split.example_ids.tolist()):
            path = f"{part}/{label}-{DIGIT_NAMES[label]}/{row:05d}.png"
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0]).save(folder / path)  # (1, 28, 28) uint8 -> 28x28 grayscale
            lines.append(f"{path},digit-{row:05d}")
    (folder / "ids.csv").write_text("\n".join(lines) + "\n")


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def set_params(root: Path, update: dict) -> None:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(_merge(yaml.safe_load(path.read_text()), update), sort_keys=False))


def dvc(root: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=os.environ.copy(),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` ran, but ``ALWAYS_RUN`` (tests/test_own_data_e2e.py checks what it reruns)."""
    return [s for s in STAGES + GRID_STAGES if f"Running stage '{s}'" in output]


def stale(root: Path, *args: str) -> dict:
    """`dvc status --json` (with ``args``) less the stages DVC reports as "always changed" (`sources`)."""
    status = json.loads(dvc(root, "status", *args, "--json").stdout)
    return {stage: why for stage, why in status.items() if why != ["always changed"]}


def experiments(root: Path) -> dict[str, dict]:
    """`dvc exp show`'s experiments by name."""
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    return {rev["name"]: rev for baseline in shown for group in (baseline.get("experiments") or [])
            for rev in group["revs"]}


def owners_in_outputs(root: Path) -> tuple[list[str], "pd.DataFrame"]:
    """(the prepared owner id map's owner ids, the forget set), checking that the forget set, the memorization
    scores and the proxies each name every row's owner beside its example id, as data/prepared/owner_ids.csv
    maps them."""
    import pandas as pd

    owners = pd.read_csv(root / "data/prepared/owner_ids.csv", dtype={"owner_id": str}, keep_default_na=False)
    by_id = dict(zip(owners["example_id"], owners["owner_id"]))
    forget = pd.read_csv(root / "data/partition/forget.csv", dtype={"owner_id": str}, keep_default_na=False)
    for table in (forget, pd.read_parquet(root / "data/memorize/scores.parquet"),
                  pd.read_parquet(root / "data/proxies/proxies.parquet")):
        assert list(table.columns[:2]) == ["example_id", "owner_id"]
        assert table["owner_id"].tolist() == [by_id[e] for e in table["example_id"]]
    return owners["owner_id"].tolist(), forget


def commit(root: Path, message: str = "baseline") -> None:
    """Commit the project (DVC experiments run from a baseline commit); data stay git-ignored."""
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", message],
                   cwd=root, check=True)


@contextmanager
def project_environment(root: Path) -> Iterator[Path]:
    """The environment the stages of the project in ``root`` need, for the duration of the block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `python` in dvc.yaml
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
        mp.setenv("PREFECT_HOME", str(root / ".prefect"))
        mp.delenv("MEMUNLEARN_RUN_GROUP", raising=False)
        yield root


@contextmanager
def tiny_project(root: Path, params: dict = TINY) -> Iterator[Path]:
    """A git + DVC copy of this project in ``root`` with ``params`` (and TINY's folder of digits where they read
    it), and the environment its stages need."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "src", "flows"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "data").mkdir()
    shutil.copy(REPO / "data/README.md", root / "data/README.md")  # git's one file of data/, as in a clone
    (root / "requests").mkdir()
    shutil.copy(REPO / "requests/ledger.jsonl", root / "requests/ledger.jsonl")  # empty: no request yet
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    set_params(root, params)
    if params.get("data", {}).get("path") == DIGITS:
        write_digits(root / DIGITS)
    with project_environment(root):
        yield root


@dataclass(frozen=True)
class Reproduced:
    """TINY's project after its first `dvc repro`, run from scratch: where it is and what that repro printed."""

    root: Path
    first_repro: subprocess.CompletedProcess


def reproduce_tiny_project(folder: Path) -> Reproduced:
    """TINY's project in ``folder``/project after its first `dvc repro`, reproduced by the first process of the
    test session that asks (pytest-xdist's workers share ``folder``) while the others wait for it."""
    root, record = folder / "project", folder / "first_repro.json"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            root.mkdir()
            try:
                with tiny_project(root):
                    result = dvc(root, "repro", check=False, timeout=2400)  # 23 stages: slow on a busy machine
            except subprocess.TimeoutExpired as timeout:  # the other workers fail at once, as this one does
                result = subprocess.CompletedProcess(timeout.cmd, -1, str(timeout.stdout), str(timeout))
            record.write_text(json.dumps({"args": result.args, "returncode": result.returncode,
                                          "stdout": result.stdout, "stderr": result.stderr}))
    result = subprocess.CompletedProcess(**json.loads(record.read_text()))
    if result.returncode:
        raise AssertionError(f"the first dvc repro of TINY's project failed:\n{result.stdout}\n{result.stderr}")
    return Reproduced(root, result)


def _relocate_mlflow_store(database: Path, old: Path, new: Path) -> None:
    """Point every path the SQLite store records under ``old`` (artifact locations, model sources) at ``new``."""
    old_prefix, new_prefix = f"{old}/", f"{new}/"
    with sqlite3.connect(database) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')
                       if row[2].upper().startswith(("VARCHAR", "TEXT", "CHAR", "CLOB")) or not row[2]]
            for column in columns:
                db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?)',
                           (old_prefix, new_prefix, old_prefix))
    db.close()


@contextmanager
def copied_project(shared: Reproduced, root: Path) -> Iterator[Path]:
    """A self-contained copy of ``shared``'s project in ``root`` (a new folder): workspace, git state,
    `.dvc/cache` and the MLflow store (its recorded paths moved to the copy), with the environment its stages
    need. The copy may be changed freely; ``shared`` stays as it was."""
    shutil.copytree(shared.root, root, symlinks=True)
    _relocate_mlflow_store(root / "mlruns.db", shared.root, root)
    with project_environment(root):
        yield root
