"""Benchmark: exact-memorization throughput, the reference's sequential loop vs the engine.

In one process, on the default data and recipe (params.yaml), the same K
subset models are trained twice: one after another in this process with all
its threads (the reference code's approach), then by the engine with
--workers local processes. Prints models per hour for each, their ratio and
peak memory; checks both gave the same scores.

    python benchmarks/memorization.py [--models K] [--workers W] [--threads-per-worker T] [--json FILE]

--json writes the figures, the engine/sequential ratio under ``speedup``.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from memunlearn.config import from_params
from memunlearn.data import PrepareConfig, prepare
from memunlearn.memorization import ExactConfig, SubsetModelStore, memorization_scores, train_subset_models
from memunlearn.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4, help="K subset models per approach")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    recipe = from_params(TrainConfig, {**params["train"], "device": "cpu"}, "train")
    base = from_params(ExactConfig, params["memorize"], "memorize")
    data = prepare(from_params(PrepareConfig, params["data"], "data"), ROOT / "data/raw")
    dev = torch.device("cpu")
    results = {}
    for name, workers, threads in (("sequential", 1, 0), ("engine", args.workers, args.threads_per_worker)):
        config = ExactConfig(args.models, base.subset_fraction, base.seed, workers, threads)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            runs = train_subset_models(data.train, data.test, data.info, recipe, config, dev,
                                       SubsetModelStore(Path(tmp), "bench")).runs
            seconds = time.perf_counter() - start
        results[name] = {"seconds": seconds, "models_per_hour": args.models / seconds * 3600,
                         "scores": memorization_scores(runs, data.train.example_ids.numpy())["mem"].to_numpy()}

    same = np.allclose(results["sequential"]["scores"], results["engine"]["scores"], equal_nan=True)
    figures = {
        "sequential_models_per_hour": results["sequential"]["models_per_hour"],
        "engine_models_per_hour": results["engine"]["models_per_hour"],
        "speedup": results["engine"]["models_per_hour"] / results["sequential"]["models_per_hour"],
        "sequential_seconds": results["sequential"]["seconds"],
        "engine_seconds": results["engine"]["seconds"],
        "peak_rss_mib_main": peak_rss_mib(resource.RUSAGE_SELF),
        "peak_rss_mib_workers": peak_rss_mib(resource.RUSAGE_CHILDREN),
        "same_scores": bool(same),
        "models": args.models, "workers": args.workers, "threads_per_worker": args.threads_per_worker,
        "torch_threads_sequential": torch.get_num_threads(), "epochs": recipe.epochs, "device": "cpu",
    }
    print(f"K={args.models} subset models, {recipe.epochs} epochs, {len(data.train)} training examples, CPU")
    print(f"  sequential ({torch.get_num_threads()} threads): {figures['sequential_models_per_hour']:.0f} models/h")
    print(f"  engine ({args.workers} processes x {args.threads_per_worker} threads): "
          f"{figures['engine_models_per_hour']:.0f} models/h")
    print(f"  speedup {figures['speedup']:.2f}x; peak RSS main {figures['peak_rss_mib_main']:.0f} MiB, "
          f"largest worker {figures['peak_rss_mib_workers']:.0f} MiB; same scores: {same}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
