"""Benchmark: the default `dvc repro` from a fresh clone, stage by stage.

Clones this repository (its committed HEAD, or --rev) into a temporary
folder, checks the params, runs `dvc repro` there and times every stage from
DVC's own "Running stage" lines: a stage's seconds run from its line to the
next one, so they include the stage's process start, imports, MLflow logging
and DVC's hashing and lock update, everything a user waits for. Prints the
table, slowest first, grouped by stage family (`name@item` -> `name`).

    python benchmarks/pipeline.py [--rev REV] [--keep DIR] [--json FILE] [-- dvc repro args]
    python benchmarks/pipeline.py --preset params/text.yaml --target claims [--keep DIR] [--json FILE]

--preset runs the preset as a DVC experiment (`dvc exp run TARGET` with the
preset's overrides, as the README's text section does) instead of `dvc repro`.

--json writes ``total_seconds``, ``stages`` (name -> seconds, in run order)
and ``families`` (family -> seconds, count). The machine's load is not
controlled: run it on a quiet machine and state the load with the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"^Running stage '([^']+)'")
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
         "DVC_NO_ANALYTICS": "1"}


def timed_repro(workspace: Path, repro_args: list[str], log, preset: Path | None = None,
                target: str = "") -> tuple[dict[str, float], float]:
    """Run `dvc repro` (or, with ``preset``, `dvc exp run TARGET` with its overrides) in ``workspace``; (seconds
    per stage in run order, total seconds)."""
    env = {**os.environ, **QUIET, "PYTHONPATH": str(workspace / "src")}  # the clone's code, not an installed copy
    start = time.perf_counter()
    check = [sys.executable, "-m", "memunlearn.cli", "check"]
    command = [sys.executable, "-m", "dvc", "repro", *repro_args]
    if preset is not None:
        overrides = subprocess.run([sys.executable, "-m", "memunlearn.cli", "overrides", str(preset)], cwd=workspace,
                                   env=env, check=True, capture_output=True, text=True).stdout
        name = f"bench-{preset.stem}"
        command = [sys.executable, "-m", "dvc", "exp", "run", *([target] if target else []), "--name", name,
                   *shlex.split(overrides), *repro_args]
        check += ["--preset", str(preset)]
    subprocess.run(check, cwd=workspace, env=env, check=True)
    stages: dict[str, float] = {}
    current, since = None, time.perf_counter()
    with subprocess.Popen(command, cwd=workspace, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1) as proc:
        for line in proc.stdout:
            log.write(line)
            match = RUNNING.match(line)
            if match:
                now = time.perf_counter()
                if current is not None:
                    stages[current] = now - since
                    log.write(f"[pipeline benchmark] {current}: {stages[current]:.1f} s (at {now - start:.0f} s)\n")
                current, since = match.group(1), now
    if proc.returncode:
        raise SystemExit(f"dvc repro failed with exit code {proc.returncode}; its log is above")
    end = time.perf_counter()
    if current is not None:
        stages[current] = end - since
    return stages, end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the commit to clone and run")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it, instead of a temporary one")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--preset", type=Path, help="a params preset (e.g. params/text.yaml): run it as an experiment")
    parser.add_argument("--target", default="", help="with --preset: the stage `dvc exp run` reproduces")
    parser.add_argument("repro_args", nargs="*", help="extra `dvc repro` arguments (after --)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="memunlearn-bench-"))
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
        subprocess.run(["git", "checkout", "--quiet", args.rev], cwd=folder, check=True)
        stages, total = timed_repro(folder, args.repro_args, sys.stdout, args.preset, args.target)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    families: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "count": 0})
    for name, seconds in stages.items():
        family = families[name.split("@")[0]]
        family["seconds"] += seconds
        family["count"] += 1
    print(f"\n{'stage family':28s} {'stages':>6s} {'seconds':>8s} {'share':>6s}")
    for name, fam in sorted(families.items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"{name:28s} {fam['count']:6d} {fam['seconds']:8.1f} {fam['seconds'] / total:6.1%}")
    print(f"{'total (incl. check)':28s} {len(stages):6d} {total:8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"total_seconds": total, "stages": stages, "families": dict(families),
                                         "rev": args.rev, "preset": str(args.preset or ""), "cpus": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
