"""Benchmark: where one subset model's time goes: the engine's earlier forms against today's, fp32 vs bf16.

One subset model of the default data and recipe (params.yaml), trained and
scored by the library's own functions in four ways, interleaved, best of
``--reps`` each (in one process, so machine load hits all alike):

- ``per_batch_fp32``: the engine before normalize-once: each batch gathered as uint8 and normalized;
- ``two_passes_fp32``: the engine before issue 28 item 2: D and T each normalized once, one eval pass each;
- ``one_pass_fp32``: the engine now (memorization/engine.py): D and T normalized once as one tensor,
  training batches are row gathers of it, one eval pass scores both;
- ``one_pass_bf16``: the same with ``train.precision: bf16`` (autocast).

Phases: setup (mask, model init, channels-last, normalizing the splits),
batching (gather + normalize, inside ``fit``), steps (forward, backward,
SGD, bookkeeping), scoring (the eval passes over D and T). Times are for
``--epochs`` epochs and scaled to the recipe's epochs (batching and steps
per epoch are constant).

The scoring phase is short, so a load spike swamps it in the table; it is
also timed alone: one untrained model's two eval passes against the one
fused pass, alternated ``--scoring-reps`` times, medians and their ratio.
``--ops N``: torch.profiler's self-CPU time per operator over N training
steps (fp32), the shares inside the steps phase.

    python benchmarks/subset_model_breakdown.py [--epochs 3] [--reps 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from _setup import CPU, default_data, default_params, default_recipe, training_step
from memunlearn.memorization.engine import subset_mask
from memunlearn.models import build_model
from memunlearn.seeding import derive_seed, generator
from memunlearn.training import TrainConfig, loop


class Clock:
    """Seconds spent inside ``loop.normalized_batches`` while ``active`` (fit's batching)."""

    def __init__(self):
        self.batching, self.active = 0.0, False
        self._real = loop.normalized_batches
        loop.normalized_batches = self._timed

    def _timed(self, *args, **kwargs):
        batches = self._real(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(batches)
            except StopIteration:
                return
            finally:
                if self.active:
                    self.batching += time.perf_counter() - start
            yield item


def one_model(data, recipe: TrainConfig, form: str, clock: Clock) -> dict[str, float]:
    """form: per_batch | two_passes | one_pass (the module docstring)."""
    t0 = time.perf_counter()
    mask = subset_mask(len(data.train), 0.7, 0, 0)
    model = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size,
                        seed=derive_seed(0, "subset_model_init", 0)).to(memory_format=torch.channels_last)
    both = data.train.concat(data.test)
    if form == "one_pass":
        inputs = {"both": loop.normalized_inputs(both, data.info, CPU, True)}
        inputs["train"] = inputs["both"][:len(data.train)]
    else:
        inputs = {name: loop.normalized_inputs(split, data.info, CPU, True) if form == "two_passes" else None
                  for name, split in (("train", data.train), ("test", data.test))}
    t1 = time.perf_counter()
    clock.batching, clock.active = 0.0, True
    loop.fit(model, data.train.take(mask), data.info, recipe, generator(0, "subset_model_order", 0), CPU,
             inputs=inputs["train"][mask] if inputs["train"] is not None else None)
    clock.active = False
    t2 = time.perf_counter()
    passes = (("both", both),) if form == "one_pass" else (("train", data.train), ("test", data.test))
    for name, split in passes:
        loop.predict_proba(model, split, data.info, CPU, precision=recipe.precision, inputs=inputs[name])
    t3 = time.perf_counter()
    return {"setup": t1 - t0, "batching": clock.batching, "steps": t2 - t1 - clock.batching, "scoring": t3 - t2}


def scoring_alone(data, reps: int) -> dict[str, float]:
    """Median seconds of the eval passes over D and T: a pass each (before) vs one pass over both (now)."""
    model = build_model("small_cnn", data.info.in_channels, data.info.num_classes, data.info.image_size,
                        seed=0).to(memory_format=torch.channels_last)
    both = data.train.concat(data.test)
    inputs = {"train": loop.normalized_inputs(data.train, data.info, CPU, True),
              "test": loop.normalized_inputs(data.test, data.info, CPU, True),
              "both": loop.normalized_inputs(both, data.info, CPU, True)}
    forms = {"two_passes": (("train", data.train), ("test", data.test)), "one_pass": (("both", both),)}
    times = {form: [] for form in forms}
    for _ in range(reps):
        for form, passes in forms.items():
            start = time.perf_counter()
            for name, split in passes:
                loop.predict_proba(model, split, data.info, CPU, inputs=inputs[name])
            times[form].append(time.perf_counter() - start)
    medians = {form: statistics.median(t) for form, t in times.items()}
    return {**medians, "ratio_two_over_one": medians["two_passes"] / medians["one_pass"], "reps": reps}


def op_profile(data, recipe: TrainConfig, steps: int) -> list[dict]:
    """Self-CPU seconds per operator over ``steps`` fp32 training steps of one channels-last model, largest first."""
    from torch.profiler import ProfilerActivity, profile
    step = training_step(data, recipe)
    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count}
            for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(r["self_cpu_s"] for r in rows)
    rows = sorted(rows, key=lambda r: -r["self_cpu_s"])
    for r in rows:
        r["share"] = r["self_cpu_s"] / total
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scoring-reps", type=int, default=30)
    parser.add_argument("--ops", type=int, default=0, help="profile this many training steps per operator")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = default_params()
    recipe, data = default_recipe(params), default_data(params)
    if args.ops:
        ops = op_profile(data, recipe, args.ops)
        print(f"{args.ops} fp32 training steps, self CPU time per operator ({args.threads} threads):")
        for r in ops[:15]:
            print(f"  {r['op']:45s} {r['self_cpu_s']:8.3f}s {r['share']:6.1%}  {r['calls']} calls")
        if args.json:
            args.json.write_text(json.dumps({"steps": args.ops, "ops": ops}, indent=2) + "\n")
        return
    short = dataclasses.replace(recipe, epochs=args.epochs)
    fp32, bf16 = (dataclasses.replace(short, precision=p) for p in ("fp32", "bf16"))
    variants = {"per_batch_fp32": (fp32, "per_batch"), "two_passes_fp32": (fp32, "two_passes"),
                "one_pass_fp32": (fp32, "one_pass"), "one_pass_bf16": (bf16, "one_pass")}
    clock = Clock()
    best: dict[str, dict[str, float]] = {}
    for rep in range(args.reps + 1):  # the first round warms up
        for name, (r, form) in variants.items():
            row = one_model(data, r, form, clock)
            if rep and (name not in best or sum(row.values()) < sum(best[name].values())):
                best[name] = row
    scale = recipe.epochs / args.epochs
    table = {}
    for name, row in best.items():
        full = {"setup": row["setup"], "batching": row["batching"] * scale, "steps": row["steps"] * scale,
                "scoring": row["scoring"]}
        full["total"] = sum(full.values())
        table[name] = full
    base = table["per_batch_fp32"]["total"]
    print(f"one subset model, {recipe.epochs} epochs (measured {args.epochs}, scaled), {args.threads} threads; seconds")
    print(f"{'':16s}" + "".join(f"{k:>10s}" for k in ("setup", "batching", "steps", "scoring", "total")) + "   vs before")
    for name, full in table.items():
        print(f"{name:16s}" + "".join(f"{full[k]:10.2f}" for k in ("setup", "batching", "steps", "scoring", "total"))
              + f"   {base / full['total']:.2f}x")
    scoring = scoring_alone(data, args.scoring_reps)
    print(f"scoring alone (median of {scoring['reps']}): two passes {scoring['two_passes']:.3f}s, "
          f"one pass {scoring['one_pass']:.3f}s, {scoring['ratio_two_over_one']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"epochs": recipe.epochs, "measured_epochs": args.epochs, "seconds": table,
                                         "scoring_alone": scoring,
                                         "speedup_vs_per_batch_fp32": {n: base / t["total"] for n, t in table.items()}},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
