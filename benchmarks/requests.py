"""Drift over sequential deletion requests (docs/requests.md "Measured"): 50 requests on the embedded digits.

A fresh lineage (the repository's params.yaml: 2,000 digits with 5% planted label noise, the pipeline's recipe)
takes requests of 10-30 ids each, half random ids and half drawn from the most memorized examples (the top 10%
by the original's ``requests.proxy`` score), the kinds in pairs so the oracle checkpoints see both, each through ``memunlearn.requests.forget`` as the CLI runs it (registry included). Per request:
wall seconds, unlearning seconds, the gates' figures and verdict, held-out (test) accuracy; every
``--oracle-every``-th request also a retrain oracle trained from scratch on D minus everything forgotten so far
(that request's ids included) and the candidate's ToW against it, the oracle's verdict being ToW >= ``--tow-level``.

First the memorize stage's K subset models score D (``score_exact``): the gates' reference
(``requests.reference``: retrain-matched held-out examples) reads their out-of-subset accuracy; ``--no-exact``
skips them (class-matched references).

    python benchmarks/requests.py --json results/requests_benchmark.json

Keys: seconds_per_request, retrain_seconds, speedup_vs_retrain (retrain_seconds / seconds_per_request),
seconds_by_phase (the mean of each request report's ``seconds``: load, scores, unlearn, gates, register, total),
unlearn_speedup_vs_retrain (retrain_seconds over the unlearning alone, without scores, gates and registry),
final_tow (the last checkpoint's; final_tow_of_original: the original's, a lineage that unlearned nothing),
gate_agreement_with_oracle (share of checkpoints where the gates' verdict and
the oracle's agree), and per request ``requests``; ``checkpoints`` is the gate-vs-oracle table.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0] and this file would shadow the `requests` package MLflow imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import shutil
import tempfile
import time

import numpy as np
import torch
import yaml

from memunlearn.cli import request_project
from memunlearn.evaluation.report import EvaluateConfig, model_metrics
from memunlearn.evaluation.tow import tow
from memunlearn.models import build_model
from memunlearn.requests import RequestRejected, forget, ledger
from memunlearn.requests.bootstrap import bootstrap, score_exact
from memunlearn.requests.scores import version_scores
from memunlearn.requests.service import load_data
from memunlearn.devices import resolve_device
from memunlearn.tracking import resolve_version, load_state_dict, TrackingTarget, store_location
from memunlearn.training import load_checkpoint
from memunlearn.training.oracle import cached_oracle

REPO = Path(__file__).resolve().parents[1]


def candidate_model(project, version: str, data):
    ref = resolve_version(project.target, f"models:/{project.model_name}/{version}")
    info = data.info
    model = build_model(ref.tags.get("model", project.recipe.model), info.in_channels, info.num_classes,
                        info.image_size, seed=0)
    model.load_state_dict(load_state_dict(project.target, ref))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--oracle-every", type=int, default=10)
    parser.add_argument("--tow-level", type=float, default=0.9, help="the oracle's verdict: ToW >= this")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=YAML",
                        help="override params.yaml, e.g. data.max_train=500 (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-exact", action="store_true",
                        help="skip the exact scores (the memorize stage's subset models): the gates then compare F "
                             "with class-matched held-out examples, as with requests.reference=class")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="memunlearn-requests-"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        params[section][name] = yaml.safe_load(value)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    project = request_project(root)  # first: it sets torch's threads (MEMUNLEARN_THREADS) for the original too
    uri, artifacts = store_location(root)
    original_seconds = bootstrap(root, params, TrackingTarget(uri, artifacts))
    exact_seconds = None if args.no_exact else score_exact(root, params)  # the gates' reference (requests.reference)
    data = load_data(project)
    device = resolve_device(project.config.device)
    original, _ = load_checkpoint(root / "data/train/model.pt", "train")
    scores = version_scores(original, data, device, project.config.proxy, None,
                            root / "data/requests/scores").values  # the proxy for both runs: the same ids
    high = scores.sort_values(ascending=False).index.to_numpy()[: len(scores) // 10]  # top 10%: most memorized
    rng = np.random.default_rng(args.seed)
    rows, checkpoints = [], []
    for k in range(1, args.requests + 1):
        forgotten = ledger.forgotten_ids(ledger.read(project.ledger), data.owners)
        kind = "high" if k % 4 in (2, 3) else "random"  # half and half; the checkpoints (k = 10, 20, ...) both
        pool = np.setdiff1d(data.train.example_ids.numpy() if kind == "random" else high, list(forgotten))
        ids = rng.choice(pool, min(len(pool), int(rng.integers(10, 31))), replace=False).tolist()
        start = time.perf_counter()
        try:
            outcome = forget(project, f"bench-{k:03d}", ids)
            report, version = outcome.report, outcome.version
        except RequestRejected as exc:
            version = exc.version
            report = json.loads((project.reports / f"bench-{k:03d}.json").read_text())
        seconds = time.perf_counter() - start
        row = {"request": k, "kind": kind, "ids": len(ids), "seconds": seconds,
               "unlearn_seconds": report["seconds"]["unlearn"], "phases": report["seconds"], "verdict": report["verdict"],
               "test_acc": report["figures"]["test_acc"], "scores": report["scores"]["name"],
               "gates": {g["name"]: g["figure"] for g in report["gates"]}, "reference": report["figures"]["reference"]}
        if k % args.oracle_every == 0:
            gone = sorted(forgotten | set(ids))
            forget_split, retain = data.train.select_ids(gone), data.train.drop_ids(gone)
            oracle, oracle_seconds, _ = cached_oracle(retain, data.info, project.recipe, device, args.seed, None)
            metric = lambda m: model_metrics(m, forget_split, retain, data.test, {}, data.info,  # noqa: E731
                                             EvaluateConfig(), device)
            oracle_metrics = metric(oracle)
            row["tow"] = tow(metric(candidate_model(project, version, data)), oracle_metrics)
            row["oracle_seconds"] = oracle_seconds
            checkpoints.append({"request": k, "forgotten": len(gone), "tow": row["tow"],
                                "tow_of_original": tow(metric(original), oracle_metrics),  # unlearning nothing
                                "oracle_verdict": row["tow"] >= args.tow_level,
                                "gates_verdict": report["verdict"] == "accepted",
                                "gates": report["gates"]})
        rows.append(row)
        print(json.dumps({key: row[key] for key in ("request", "kind", "ids", "seconds", "verdict", "test_acc")}
                         | ({"tow": row["tow"]} if "tow" in row else {})), flush=True)
        write(args, rows, checkpoints, original_seconds, exact_seconds, device)  # after every request: a cut-short run keeps them
    print(json.dumps({k: v for k, v in json.loads(args.json.read_text()).items()
                      if k not in ("requests", "checkpoints")}, indent=2))
    shutil.rmtree(root, ignore_errors=True)


def write(args, rows: list[dict], checkpoints: list[dict], original_seconds: float, exact_seconds, device) -> None:
    per_request = float(np.mean([r["seconds"] for r in rows]))
    retrains = [r["oracle_seconds"] for r in rows if "oracle_seconds" in r]
    retrain = float(np.mean(retrains)) if retrains else None
    result = {
        "seconds_per_request": per_request,
        "unlearn_seconds_per_request": float(np.mean([r["unlearn_seconds"] for r in rows])),
        "seconds_by_phase": {phase: float(np.mean([r["phases"].get(phase, 0.0) for r in rows]))
                             for phase in rows[-1]["phases"]},  # mean over requests: where a request's time goes
        "retrain_seconds": retrain, "original_train_seconds": original_seconds, "exact_scores_seconds": exact_seconds,
        "gate_reference": rows[-1]["reference"],
        "speedup_vs_retrain": retrain / per_request if retrain else None,
        "unlearn_speedup_vs_retrain": retrain / float(np.mean([r["unlearn_seconds"] for r in rows])) if retrain else None,
        "final_tow": checkpoints[-1]["tow"] if checkpoints else None,
        "final_tow_of_original": checkpoints[-1]["tow_of_original"] if checkpoints else None,
        "gate_agreement_with_oracle": float(np.mean([c["oracle_verdict"] == c["gates_verdict"] for c in checkpoints]))
        if checkpoints else None,
        "tow_level": args.tow_level, "requests_done": len(rows), "accepted": sum(r["verdict"] == "accepted" for r in rows),
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "checkpoints": checkpoints, "requests": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
