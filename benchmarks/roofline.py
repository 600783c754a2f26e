"""Benchmark: the fraction of this CPU's peak that a subset model's training step reaches.

What bounds the engine's speedup over the sequential reference loop
(docs/memorization-speed.md, "Engine speed"): both run the same operators,
so the engine can only gain what those operators leave of the CPU's peak.
The peak here is measured, not read from a data sheet: the best rate a large
dense matrix multiply (``--gemm``, square) reaches in fp32 and in bf16 on the
same threads, the ceiling any kernel in the step could approach.

For the default data and recipe (params.yaml: the small CNN, batch
``train.batch_size``, channels-last), one training step (forward, backward,
SGD) is timed in fp32 and under bf16 autocast, interleaved with the GEMMs
(``--reps`` rounds, medians). Its FLOPs are counted by
``torch.utils.flop_counter`` (convolutions and matrix multiplies only: the
element-wise work of batch norm, ReLU, pooling and the optimizer is not
counted, so the achieved rate is a lower bound on the arithmetic done and an
upper bound on what a faster matmul could save).

    python benchmarks/roofline.py [--threads 1] [--reps 7] [--json FILE]

Keys: ``step_gflops_{fp32,bf16}``, ``gemm_gflops_{fp32,bf16}``,
``peak_fraction_{fp32,bf16}`` (step / GEMM of the same precision),
``step_flops`` (per step), ``step_seconds_{fp32,bf16}``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from _setup import default_data, default_params, default_recipe, training_step


def counted_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def gemm(size: int, dtype: torch.dtype):
    a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(i)).to(dtype) for i in (0, 1))
    return lambda: torch.mm(a, b)


def seconds(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=7, help="interleaved rounds; medians over them")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per round")
    parser.add_argument("--gemm", type=int, default=2048, help="the peak's square matrix size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = default_params()
    recipe, data = default_recipe(params), default_data(params)

    steps = {p: training_step(data, recipe, p) for p in ("fp32", "bf16")}
    gemms = {p: gemm(args.gemm, dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    step_flops = counted_flops(steps["fp32"])  # the same operators in bf16: autocast changes dtypes, not FLOPs
    gemm_flops = 2 * args.gemm ** 3
    times: dict[str, list[float]] = {f"{kind}_{p}": [] for kind in ("step", "gemm") for p in ("fp32", "bf16")}
    for round_ in range(args.reps + 1):  # round 0 warms up (oneDNN primitives, allocator)
        for p in ("fp32", "bf16"):
            step_s = seconds(steps[p], args.steps)
            gemm_s = seconds(gemms[p], 3)
            if round_:
                times[f"step_{p}"].append(step_s)
                times[f"gemm_{p}"].append(gemm_s)
    result: dict[str, float | int | str] = {"threads": args.threads, "batch_size": recipe.batch_size,
                                            "model": recipe.model, "step_flops": step_flops, "gemm_size": args.gemm}
    for p in ("fp32", "bf16"):
        step_s, gemm_s = statistics.median(times[f"step_{p}"]), statistics.median(times[f"gemm_{p}"])
        result[f"step_seconds_{p}"] = step_s
        result[f"step_gflops_{p}"] = step_flops / step_s / 1e9
        result[f"gemm_gflops_{p}"] = gemm_flops / gemm_s / 1e9
        result[f"peak_fraction_{p}"] = result[f"step_gflops_{p}"] / result[f"gemm_gflops_{p}"]
    print(f"{recipe.model}, batch {recipe.batch_size}, {args.threads} thread(s): "
          f"{step_flops / 1e6:.1f} MFLOP per training step (convolutions and matmuls)")
    for p in ("fp32", "bf16"):
        print(f"  {p}: step {result[f'step_seconds_{p}'] * 1e3:6.2f} ms = {result[f'step_gflops_{p}']:6.1f} GFLOP/s; "
              f"GEMM {args.gemm}^3 {result[f'gemm_gflops_{p}']:6.1f} GFLOP/s; "
              f"peak fraction {result[f'peak_fraction_{p}']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
