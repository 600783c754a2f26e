"""Benchmark: exact-memorization throughput, the reference's sequential loop vs the engine.

In one process, on the default data and recipe (params.yaml), the same K
subset models are trained by:

- ``sequential``: the reference code's approach, one model after another in
  this process, default (NCHW) layout, all threads;
- ``engine``: memorize's engine as params.yaml configures it (``stack: 0`` =
  auto per device, ``channels_last``);
- with ``--variants``, each option the engine can pick from: stacked models
  per kernel (grouped convs), channels-last, local processes.

Prints models per hour for each, ratios to sequential, peak memory, and
whether the scores agree. Runs interleave (``interleaved``: each approach
trains its next model, or its next stack, in turn, sequential first) so
that drift in machine load hits all alike.

Time to stable scores (``--stable-train N`` training examples, 0 = skip):
the engine with ``num_models: auto`` (its estimator mem_prob, its precision)
vs the sequential reference (0/1 estimator ``mem``, fp32, NCHW), each in
rounds of ``round_models`` until the split-half Pearson r of its estimator
reaches ``stable_pearson`` or K reaches ``max_models`` (params.yaml); the
two alternate round by round.

    python benchmarks/memorization.py [--models K] [--variants] [--stable-train N] [--precision P] [--json FILE]

--json writes the figures: the engine/sequential ratio at equal K under
``speedup``; ``time_to_stable_seconds`` per approach and their ratio
``time_to_stable_speedup`` (sequential / engine).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

import torch

from _setup import default_data, default_params
from memunlearn.config import from_params
from memunlearn.memorization import ExactConfig, SubsetModelStore, memorization_scores, train_subset_models
from memunlearn.memorization.agreement import spearman
from memunlearn.training import TrainConfig
from memunlearn.training.recipe import recipe_for, resolve_precision


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def interleaved(data, approaches: dict[str, tuple[ExactConfig, TrainConfig]], device, workers: dict[str, int],
                models: int) -> dict[str, dict]:
    """Each approach's ``models`` subset models, trained in turns: every approach trains its next round (as
    many models as it runs at once: ``workers`` x models per job), then the next approach, each into its own
    store, until all reach K; so drift in machine load (other processes) hits every approach alike."""
    seconds, done, runs = dict.fromkeys(approaches, 0.0), dict.fromkeys(approaches, 0), {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: SubsetModelStore(Path(tmp) / name, "bench") for name in approaches}
        while any(k < models for k in done.values()):
            for name, (config, recipe) in approaches.items():
                step = workers.get(name, 1) * config.models_per_job(device)
                if done[name] >= models:
                    continue
                done[name] = min(models, done[name] + step)
                start = time.perf_counter()
                runs[name] = train_subset_models(data.train, data.test, data.info, recipe,
                                                 dataclasses.replace(config, num_models=done[name]), device,
                                                 stores[name], workers=workers.get(name, 1)).runs  # models 0..done-1
                seconds[name] += time.perf_counter() - start
    ids = data.train.example_ids.numpy()
    return {name: {"seconds": seconds[name], "models_per_hour": models / seconds[name] * 3600,
                   "scores": memorization_scores(runs[name], ids).set_index("example_id")["mem"]}
            for name in approaches}


def time_to_stable(data, racers: dict[str, tuple[TrainConfig, ExactConfig, str]], device) -> dict[str, dict]:
    """Per racer (recipe, memorize settings with num_models auto, estimator): seconds until it stops, K reached,
    the criterion's value, and whether it was met. Interleaved: each racer trains its next round of
    ``round_models`` in turn (its cap raised one round at a time; the store keeps the earlier rounds)."""
    seconds, results = dict.fromkeys(racers, 0.0), {}
    logging.getLogger("memunlearn.memorization").setLevel(logging.ERROR)  # not "cap reached" at every raised cap
    with tempfile.TemporaryDirectory() as tmp:
        cap = 0
        while len(results) < len(racers) or not all(_finished(r, racers[n][1]) for n, r in results.items()):
            cap += min(config.round_models for _, config, _ in racers.values())
            for name, (recipe, config, score) in racers.items():
                if name in results and _finished(results[name], config):
                    continue
                start = time.perf_counter()
                results[name] = train_subset_models(
                    data.train, data.test, data.info, recipe,
                    dataclasses.replace(config, max_models=min(cap, config.max_models)), device,
                    SubsetModelStore(Path(tmp) / name, "bench"), score=score)
                seconds[name] += time.perf_counter() - start
    return {name: {"seconds": seconds[name], "models": len(r.runs), "split_half_pearson": r.split_half_pearson,
                   "stable": r.stable, "estimator": racers[name][2], "precision": racers[name][0].precision}
            for name, r in results.items()}


def _finished(result, config: ExactConfig) -> bool:
    return bool(result.stable) or len(result.runs) >= config.max_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4, help="K subset models per approach")
    parser.add_argument("--variants", action="store_true", help="also time each option the engine picks from")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", help="the engine's precision (default: params.yaml's memorize.recipe over train)")
    parser.add_argument("--stable-train", type=int, default=1000,
                        help="training examples for the time-to-stable race (0 = skip it)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    params = default_params()
    recipe = dataclasses.replace(recipe_for(params, "subset"), device=args.device,  # memorize.recipe over train
                                 **({"precision": args.precision} if args.precision else {}))
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    engine = dataclasses.replace(from_params(ExactConfig, params["memorize"], "memorize"), num_models=args.models)
    data = default_data(params)
    sequential_recipe = dataclasses.replace(recipe, precision="fp32", channels_last=False)  # the reference
    channels_last, nchw = (dataclasses.replace(recipe, channels_last=flag) for flag in (True, False))
    approaches = {  # name -> (memorize settings, recipe)
        "sequential": (dataclasses.replace(engine, stack=1, threads_per_worker=0), sequential_recipe),
        "engine": (engine, recipe),
    }
    if args.variants:
        for stack in (1, 4, 8):
            approaches[f"stack{stack}_channels_last"] = (dataclasses.replace(engine, stack=stack), channels_last)
        approaches["stack4_nchw"] = (dataclasses.replace(engine, stack=4), nchw)
        approaches["2proc_x1thread_channels_last"] = (
            dataclasses.replace(engine, stack=1, threads_per_worker=1), channels_last)

    workers = {"2proc_x1thread_channels_last": 2}  # jobs side by side (MEMUNLEARN_WORKERS in the stage)
    results = interleaved(data, approaches, device, workers, args.models)
    base = results["sequential"]
    figures = {
        "sequential_models_per_hour": base["models_per_hour"],
        "engine_models_per_hour": results["engine"]["models_per_hour"],
        "speedup": results["engine"]["models_per_hour"] / base["models_per_hour"],
        "sequential_seconds": base["seconds"],
        "engine_seconds": results["engine"]["seconds"],
        "engine_models_per_job": engine.models_per_job(device),
        "engine_channels_last": recipe.channels_last,
        "engine_precision": resolve_precision(recipe.precision, device),
        "variants": {name: {"models_per_hour": r["models_per_hour"], "ratio": r["models_per_hour"] / base["models_per_hour"],
                            "mem_spearman_vs_sequential": spearman(r["scores"], base["scores"])}
                     for name, r in results.items()},
        "peak_rss_mib_main": peak_rss_mib(resource.RUSAGE_SELF),
        "peak_rss_mib_workers": peak_rss_mib(resource.RUSAGE_CHILDREN),
        "models": args.models, "epochs": recipe.epochs, "train_examples": len(data.train),
        "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if args.stable_train:
        small = default_data(params, max_train=args.stable_train)
        auto = dataclasses.replace(engine, num_models="auto")
        race = time_to_stable(small, {
            "sequential": (sequential_recipe, dataclasses.replace(auto, stack=1, threads_per_worker=0), "mem"),
            "engine": (recipe, auto, "mem_prob")}, device)
        figures["time_to_stable_seconds"] = {name: r["seconds"] for name, r in race.items()}
        figures["time_to_stable_speedup"] = race["sequential"]["seconds"] / race["engine"]["seconds"]
        figures["time_to_stable"] = {**race, "train_examples": len(small.train), "round_models": auto.round_models,
                                     "max_models": auto.max_models, "stable_pearson": auto.stable_pearson}
        for name, r in race.items():
            print(f"  time to stable ({len(small.train)} examples), {name}: {r['seconds']:.0f}s, K={r['models']}, "
                  f"split-half Pearson r of {r['estimator']} {r['split_half_pearson']:.3f} "
                  f"({'stable' if r['stable'] else 'cap reached'})")
        print(f"  time_to_stable_speedup {figures['time_to_stable_speedup']:.2f}x")
    print(f"K={args.models} subset models, {recipe.epochs} epochs, {len(data.train)} training examples, {device}")
    for name, row in figures["variants"].items():
        print(f"  {name:30s} {row['models_per_hour']:7.0f} models/h  {row['ratio']:.2f}x  "
              f"(mem Spearman vs sequential {row['mem_spearman_vs_sequential']:.3f})")
    print(f"  speedup (engine as configured: stack {figures['engine_models_per_job']}, channels_last "
          f"{recipe.channels_last}) {figures['speedup']:.2f}x; peak RSS main {figures['peak_rss_mib_main']:.0f} MiB, "
          f"largest worker {figures['peak_rss_mib_workers']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
