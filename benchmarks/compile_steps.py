"""Benchmark: does ``torch.compile`` pay for a subset model's training and scoring steps on this machine?

One subset model (``--stack M``: M models stacked per kernel, training/stacked.py, each on its own
batch) of the default data and recipe (params.yaml), channels-last, in ``--precision``:
the eager step (forward, loss, backward, SGD) against the same step with the model wrapped in
``torch.compile`` (inductor), interleaved batch by batch in one process so machine load hits both
alike. Reports the compile time (the first compiled steps, train and eval graphs), the steady
per-step seconds of each (median over ``--steps``), the break-even number of subset models
(compile seconds / seconds saved per model), and the largest probability difference of the
eval outputs (compiled vs eager, same weights).

    python benchmarks/compile_steps.py [--steps 60] [--stack 1] [--threads 2] [--precision fp32] [--json FILE]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _setup import CPU, default_data, default_params, default_recipe
from memunlearn.models import build_model
from memunlearn.training import loop
from memunlearn.training.recipe import autocast
from memunlearn.training.stacked import stack_models


def step(model, optimizer, x, y, precision):
    """x (B*M, C, H, W): M per-model batches of B rows, model m's rows at m::M; y (B*M,)."""
    with autocast(precision, CPU):
        logits = model(x.reshape(len(y) // model.num_models, -1, *x.shape[2:]))  # (B, M*classes)
    logits = logits.reshape(len(y), -1)  # (B*M, classes): row b*M+m is model m's example b
    loss = F.cross_entropy(logits.float(), y, reduction="sum") / (len(y) // model.num_models)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--stack", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = default_params()
    recipe = dataclasses.replace(default_recipe(params), precision=args.precision)
    data = default_data(params)
    inputs = loop.normalized_inputs(data.train, data.info, CPU, True)  # (N, C, H, W) channels-last
    labels = data.train.labels
    models = [build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size, seed=m)
              for m in range(args.stack)]
    eager = (models[0] if args.stack == 1 else stack_models(models)).to(memory_format=torch.channels_last)
    eager.num_models = args.stack  # 1: the plain model, as the engine trains on a CPU
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin)
    opts = {id(m): loop.sgd(m, recipe.lr, recipe.momentum, recipe.weight_decay) for m in (eager, twin)}
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randperm(len(labels), generator=gen)[:recipe.batch_size * args.stack]
               for _ in range(args.steps + 1)]  # (B*M,)

    start = time.perf_counter()  # the compiled train graph: forward + backward
    step(compiled, opts[id(twin)], inputs[batches[0]], labels[batches[0]], args.precision)
    compile_train = time.perf_counter() - start
    step(eager, opts[id(eager)], inputs[batches[0]], labels[batches[0]], args.precision)
    times = {"eager": [], "compiled": []}
    for positions in batches[1:]:
        for name, model, opt in (("eager", eager, opts[id(eager)]), ("compiled", compiled, opts[id(twin)])):
            t = time.perf_counter()
            step(model, opt, inputs[positions], labels[positions], args.precision)
            times[name].append(time.perf_counter() - t)

    twin.load_state_dict(eager.state_dict())  # same weights: compare the eval outputs
    eager.eval(), twin.eval()
    with torch.no_grad():
        start = time.perf_counter()
        with autocast(args.precision, CPU):
            x = inputs[:1024].repeat(1, args.stack, 1, 1)  # every model scores the same rows
            out_c = compiled(x).float().reshape(1024 * args.stack, -1)
        compile_eval = time.perf_counter() - start
        with autocast(args.precision, CPU):
            out_e = eager(x).float().reshape(1024 * args.stack, -1)
    diff = float((F.softmax(out_c, 1) - F.softmax(out_e, 1)).abs().max())

    steps_per_model = recipe.epochs * -(-int(round(0.7 * len(labels))) // recipe.batch_size)
    med = {name: statistics.median(v) for name, v in times.items()}
    saved = (med["eager"] - med["compiled"]) * steps_per_model / args.stack  # a stack's step trains M models
    figures = {"compile_seconds_train": compile_train, "compile_seconds_eval": compile_eval,
               "step_seconds": med, "step_ratio_eager_over_compiled": med["eager"] / med["compiled"],
               "steps_per_model": steps_per_model, "seconds_saved_per_model": saved,
               "break_even_models": (compile_train + compile_eval) / saved if saved > 0 else None,
               "eval_max_abs_prob_diff": diff, "threads": args.threads, "precision": args.precision,
               "stack": args.stack}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
