"""Benchmark: what the memorization proxies cost, against training and against exact scores.

In one process, on the default data and training recipe (params.yaml):
  1. training overhead of recording learning events (the same training run
     with and without the recorder, interleaved, best of --repeats) and of
     loss curvature (one run);
  2. each proxy's cost as a ratio to the exact computation at the default K
     (K subset-model trainings, estimated from one timed subset model).

    python benchmarks/proxies.py [--epochs E] [--repeats R] [--json FILE]

--json writes the figures: the learning-event overhead as a fraction under
``overhead`` and exact-cost / proxy-cost per proxy under ``cost_ratio``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from _setup import default_data, default_params
from memunlearn.config import from_params
from memunlearn.memorization import ExactConfig, ProxyConfig, ProxyInputs, compute_proxies, proxy_costs
from memunlearn.memorization import run_subset_job
from memunlearn.memorization.proxies import recorded_proxies
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import CurvatureRecorder, LearningEventRecorder, RecordConfig, TrainConfig, fit


def timed_training(data, recipe, dev, recorder: str, records: RecordConfig = RecordConfig()):
    """Wall time of one training run with the given recorder; returns (seconds, model, hook)."""
    model = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size, 0)
    events = LearningEventRecorder(data.train.example_ids) if recorder == "events" else None
    curvature = (CurvatureRecorder(data.train, data.info, dev, records.curvature_h, records.curvature_batch_size,
                                   records.curvature_estimators, records.curvature_rademacher_h,
                                   records.curvature_draws) if recorder == "curvature" else None)
    start = time.perf_counter()
    fit(model, data.train, data.info, recipe, generator(0, "bench"), dev, on_batch=events, on_epoch=curvature)
    return time.perf_counter() - start, model, events or curvature


def best_of(data, recipe, dev, recorders: list[str], repeats: int) -> dict:
    """Best-of-``repeats`` per recorder, runs interleaved so drift in machine speed hits all alike."""
    best: dict = {}
    for _ in range(repeats):
        for recorder in recorders:
            run = timed_training(data, recipe, dev, recorder)
            if recorder not in best or run[0] < best[recorder][0]:
                best[recorder] = run
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=0, help="training epochs (0 = params.yaml's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs with and without learning events")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    params = default_params()
    recipe = from_params(TrainConfig, params["train"], "train")
    if args.epochs:
        recipe = TrainConfig(**{**recipe.__dict__, "epochs": args.epochs, "lr_milestones": ()})
    exact = from_params(ExactConfig, params["memorize"], "memorize")
    proxy_config = from_params(ProxyConfig, params["proxies"], "proxies")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    data = default_data(params)
    dev = torch.device("cpu")
    torch.manual_seed(0)
    fit(build_model(recipe.model, 1, 10, 28, 0), data.train.take(torch.arange(512)), data.info,
        TrainConfig(**{**recipe.__dict__, "epochs": 1}), generator(0, "warmup"), dev)  # warm-up

    runs = best_of(data, recipe, dev, ["none", "events"], args.repeats)
    (plain, _, _), (with_events, model, events) = runs["none"], runs["events"]
    with_curvature, _, curvature = timed_training(data, recipe, dev, "curvature", records)

    start = time.perf_counter()
    run_subset_job(exact.jobs([0], data.train, data.test, data.info, recipe, dev)[0])
    exact_seconds = (time.perf_counter() - start) * exact.most_models  # K subset models (auto: the cap), one timed

    heldout = data.validation if data.validation is not None else data.test  # validation split, as the stage
    inputs = ProxyInputs(data.train, heldout, data.info, model, dev, proxy_config, events.to_frame(),
                         curvature.to_frame())
    names = recorded_proxies(inputs.curvature)
    _, own = compute_proxies(names, inputs)
    by_estimator = curvature.seconds_by_estimator
    costs = proxy_costs(names, own, {"learning_events": events.seconds,
                                     "curvature": by_estimator.get("sign_gradient", 0.0),
                                     "curvature_rademacher": by_estimator.get("rademacher", 0.0)})

    figures = {
        "overhead": with_events / plain - 1,
        "curvature_overhead": with_curvature / plain - 1,
        "train_seconds": plain,
        "train_with_events_seconds": with_events,
        "train_with_curvature_seconds": with_curvature,
        "learning_event_recording_seconds": events.seconds,
        "curvature_recording_seconds": curvature.seconds,
        "exact_seconds_estimated": exact_seconds,
        "num_models": exact.most_models,
        "proxy_seconds": costs,
        "cost_ratio": {name: exact_seconds / s for name, s in costs.items()},
        "epochs": recipe.epochs,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"training, {recipe.epochs} epochs on {len(data.train)} examples ({dev}, {torch.get_num_threads()} threads):")
    print(f"  plain {plain:.2f}s | + learning events {with_events:.2f}s ({figures['overhead']:+.1%}) "
          f"| + curvature {with_curvature:.2f}s ({figures['curvature_overhead']:+.1%})")
    print(f"exact memorization at K={exact.most_models}: {exact_seconds:.1f}s (one subset model timed x K)")
    print(f"{'proxy':18s} {'seconds':>9s} {'x cheaper than exact':>22s}")
    for name, seconds in sorted(costs.items(), key=lambda kv: kv[1]):
        print(f"{name:18s} {seconds:9.3f} {figures['cost_ratio'][name]:22.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
