"""Benchmark: is bf16 inside the fp32 run-to-run spread of the exact scores (issue 28 item 1)?

Trains the memorize setting of params.yaml (data, train recipe, K, p) on the
CPU under fp32 and bf16 for each base seed of ``--seeds``, interleaved
(fp32 seed a, bf16 seed a, fp32 seed b, ...: drift in machine load hits
both precisions), each into its own store under ``--store`` (a rerun
resumes). For ``mem_prob`` (the estimator the pipeline ranks by) it measures
the agreement of

- ``fp32_vs_fp32``: fp32 runs of different base seeds (independent subsets,
  inits and data orders): the noise floor;
- ``fp32_vs_bf16_cross``: an fp32 and a bf16 run of different base seeds,
  the like-for-like comparison with the noise floor;
- ``fp32_vs_bf16_same``: fp32 and bf16 of the same base seed (same subsets,
  inits and orders: what precision alone changes);

as Spearman rho and top-N overlap (N = the planted-noise count), and each
run's planted-noise AUROC. Intervals: 95% percentile bootstrap over
examples (the same resampled examples for every pair and run of a draw;
the statistic averaged over the pairs of a kind), plus each kind's min and
max over its pairs.

Decision rule: bf16 is inside the noise floor when, for Spearman and top-N
overlap, the mean fp32-vs-bf16 agreement across seeds is at least the lower
end of the fp32-vs-fp32 interval, and the mean bf16 planted-noise AUROC is
at least the lower end of the fp32 runs' interval.

    nice -n 5 python benchmarks/bf16_noise_floor.py [--seeds 0,1,2] [--models K] [--max-train N] [--json FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from _setup import CPU, default_data, default_params, default_recipe
from memunlearn.config import from_params
from memunlearn.memorization import ExactConfig, SubsetModelStore, memorization_scores, train_subset_models
from memunlearn.memorization.store import key_for
from memunlearn.training.recipe import bf16_supported

METRICS = ("spearman", "top_n_overlap")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def top_n_overlap(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """|top-n of a ∩ top-n of b| / n, over positions (a bootstrap draw's repeats count as distinct)."""
    return len(set(np.argsort(-a, kind="stable")[:n]) & set(np.argsort(-b, kind="stable")[:n])) / n


def figures(scores: dict[str, np.ndarray], planted: np.ndarray, n: int, seeds: list[int],
            rows: np.ndarray | None = None) -> dict[str, float]:
    """Every figure of one draw of examples ``rows`` (None: all): mean agreement per pair kind and metric,
    mean planted-noise AUROC per precision."""
    pick = (lambda v: v) if rows is None else (lambda v: v[rows])
    s = {name: pick(v) for name, v in scores.items()}
    out = {}
    for kind, pairs in pair_kinds(seeds).items():
        values = {m: [] for m in METRICS}
        for a, b in pairs:
            values["spearman"].append(spearman(s[a], s[b]))
            values["top_n_overlap"].append(top_n_overlap(s[a], s[b], n))
        out.update({f"{kind}.{m}": float(np.mean(v)) for m, v in values.items()})
        if rows is None:
            out.update({f"{kind}.{m}.pairs": v for m, v in values.items()})
    for precision in ("fp32", "bf16"):
        aurocs = [roc_auc_score(pick(planted), s[f"{precision}_s{seed}"]) for seed in seeds]
        out[f"{precision}.planted_auroc"] = float(np.mean(aurocs))
        if rows is None:
            out[f"{precision}.planted_auroc.runs"] = aurocs
    return out


def pair_kinds(seeds: list[int]) -> dict[str, list[tuple[str, str]]]:
    return {"fp32_vs_fp32": [(f"fp32_s{a}", f"fp32_s{b}") for a, b in itertools.combinations(seeds, 2)],
            "fp32_vs_bf16_cross": [(f"fp32_s{a}", f"bf16_s{b}") for a, b in itertools.permutations(seeds, 2)],
            "fp32_vs_bf16_same": [(f"fp32_s{a}", f"bf16_s{a}") for a in seeds],
            "bf16_vs_bf16": [(f"bf16_s{a}", f"bf16_s{b}") for a, b in itertools.combinations(seeds, 2)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="base seeds (memorize.seed); at least 3: 3 fp32 pairs")
    parser.add_argument("--models", type=int, default=0, help="K; 0 = params.yaml's")
    parser.add_argument("--max-train", type=int, default=0, help="training examples; 0 = params.yaml's")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = the machine's cores")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/memunlearn_bf16_noise_floor"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 3:
        parser.error("--seeds: give at least 3 base seeds (3 fp32 pairs), e.g. --seeds 0,1,2")

    params = default_params()
    data = default_data(params, **({"max_train": args.max_train} if args.max_train else {}))
    recipe = default_recipe(params)
    config = from_params(ExactConfig, params["memorize"], "memorize")
    config = dataclasses.replace(config, num_models=args.models or config.num_models,
                                 threads_per_worker=args.threads)
    ids = data.train.example_ids.numpy()
    planted = np.isin(ids, data.flipped["example_id"].to_numpy())
    n = int(planted.sum())

    scores, runs = {}, {}
    for seed, precision in itertools.product(seeds, ("fp32", "bf16")):  # interleaved
        name = f"{precision}_s{seed}"
        r, c = dataclasses.replace(recipe, precision=precision), dataclasses.replace(config, seed=seed)
        store = SubsetModelStore(args.store / name, key_for(data.train, data.test, r, c, CPU), args.store / "timings")
        start = time.perf_counter()
        result = train_subset_models(data.train, data.test, data.info, r, c, CPU, store)
        table = memorization_scores(result.runs, ids).set_index("example_id").reindex(ids)
        scores[name] = table["mem_prob"].fillna(0.0).to_numpy()  # an example never out (or in): no evidence, 0
        seconds = time.perf_counter() - start
        runs[name] = {"seconds": seconds, "models_trained": len(result.trained),  # this call's models, this load
                      "seconds_per_model": seconds / len(result.trained) if result.trained else float("nan"),
                      "missing": int(table["mem_prob"].isna().sum())}
        print(name, json.dumps(runs[name]), flush=True)

    point = figures(scores, planted, n, seeds)
    rng = np.random.default_rng(0)
    draws = [figures(scores, planted, n, seeds, rng.integers(0, len(ids), len(ids))) for _ in range(args.bootstrap)]
    table = {}
    for key in (k for k in point if not k.endswith((".pairs", ".runs"))):
        low, high = np.percentile([d[key] for d in draws], [2.5, 97.5])
        spread = point.get(f"{key}.pairs", point.get(f"{key}.runs"))
        table[key] = {"mean": point[key], "ci95": [float(low), float(high)],
                      "min": float(min(spread)), "max": float(max(spread)), "each": spread}

    def inside(metric: str, floor: str, candidate: str) -> bool:
        return table[f"{candidate}.{metric}"]["mean"] >= table[f"{floor}.{metric}"]["ci95"][0]

    rule = {**{m: inside(m, "fp32_vs_fp32", "fp32_vs_bf16_cross") for m in METRICS},
            "planted_auroc": table["bf16.planted_auroc"]["mean"] >= table["fp32.planted_auroc"]["ci95"][0]}
    fp32_s = np.mean([runs[f"fp32_s{s}"]["seconds_per_model"] for s in seeds])
    bf16_s = np.mean([runs[f"bf16_s{s}"]["seconds_per_model"] for s in seeds])
    out = {"train_examples": len(ids), "planted": n, "num_models": config.num_models, "epochs": recipe.epochs,
           "seeds": seeds, "threads": args.threads or torch.get_num_threads(), "bootstrap": args.bootstrap,
           "interval": "95% percentile bootstrap over examples; min/max over pairs (runs for AUROC)",
           "cpu_bf16": bf16_supported(CPU), "runs": runs, "table": table, "rule": rule,
           "bf16_inside_fp32_noise_floor": all(rule.values()),
           "seconds_per_model": {"fp32": fp32_s, "bf16": bf16_s, "bf16_speedup": fp32_s / bf16_s}}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
