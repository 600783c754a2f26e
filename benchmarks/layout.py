"""Benchmark: `train.channels_last` on the work the default run repeats most, NCHW vs channels-last.

Two jobs of the default run, on the default data and params (params.yaml),
each timed with `train.channels_last: false` and `true`, interleaved, best of
``--reps`` (in one process, so machine load hits both alike):

- ``oracle``: a retrain oracle (``train_oracle``: the recipe's epochs on R,
  for a forget set of ``partition.size`` random examples); 19 in a default run;
- ``vanilla_cell``: a grid cell's unlearning run (``run_strategy('vanilla')``
  with ``methods.neggrad_plus``) from a briefly trained original; 15 vanilla
  cells in a default run, and 15 more that run 3x its epochs.

    python benchmarks/layout.py [--epochs 3] [--reps 3] [--json FILE]

``--epochs`` shortens the oracle (its time is scaled to the recipe's epochs:
every epoch costs the same); the unlearning runs in full. --json writes
per job the best seconds of each layout and ``speedup`` (NCHW / channels-last).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch

from _setup import CPU, default_data, default_params, default_recipe
from memunlearn.models import build_model
from memunlearn.partition import SUBSETS
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit
from memunlearn.training.oracle import train_oracle
from memunlearn.unlearning import UnlearnConfig, UnlearnContext, run_strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="oracle epochs timed (scaled to the recipe's)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    params = default_params()
    recipe = default_recipe(params)
    data = default_data(params)
    size = params["partition"]["size"]
    order = torch.randperm(len(data.train), generator=generator(0, "benchmark/forget"))
    forget, retain = data.train.take(order[:size]), data.train.take(order[size:])
    subsets = {name: forget.take(part) for name, part in zip(SUBSETS, torch.arange(size).chunk(3))}
    original = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size, seed=0)
    fit(original, data.train, data.info, dataclasses.replace(recipe, epochs=2, channels_last=False), generator(0, "o"),
        CPU)
    plan = UnlearnConfig(method="neggrad_plus", strategy="vanilla").plan(params["methods"])

    def oracle(layout: TrainConfig) -> float:
        start = time.perf_counter()
        train_oracle(retain, data.info, dataclasses.replace(layout, epochs=args.epochs), CPU, 0)
        return (time.perf_counter() - start) * recipe.epochs / args.epochs

    def vanilla_cell(layout: TrainConfig) -> float:
        model = copy.deepcopy(original)
        start = time.perf_counter()
        run_strategy("vanilla", model, subsets, retain, plan, UnlearnContext(data.info, layout, CPU, 0))
        return time.perf_counter() - start

    layouts = {"nchw": dataclasses.replace(recipe, channels_last=False),
               "channels_last": dataclasses.replace(recipe, channels_last=True)}
    best = {job: {name: float("inf") for name in layouts} for job in ("oracle", "vanilla_cell")}
    for rep in range(args.reps):  # interleaved: NCHW, channels-last, NCHW, ...
        for job, run in (("oracle", oracle), ("vanilla_cell", vanilla_cell)):
            for name, layout in layouts.items():
                seconds = run(layout)
                best[job][name] = min(best[job][name], seconds)
                print(f"rep {rep} {job:13s} {name:13s} {seconds:6.1f} s", flush=True)
    figures = {job: {**times, "speedup": times["nchw"] / times["channels_last"]} for job, times in best.items()}
    figures["setup"] = {"train_examples": len(data.train), "forget": size, "recipe_epochs": recipe.epochs,
                        "oracle_epochs_timed": args.epochs, "reps": args.reps, "torch_threads": torch.get_num_threads()}
    for job in ("oracle", "vanilla_cell"):
        f = figures[job]
        print(f"{job:13s} NCHW {f['nchw']:6.1f} s  channels-last {f['channels_last']:6.1f} s  {f['speedup']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
