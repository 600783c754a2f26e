"""Benchmark: do bf16 scores agree with fp32 as well as fp32 agrees with itself across thread counts?

Trains the default memorize setting (params.yaml: data, train recipe, K,
p) under each of ``--settings`` (fp32 or bf16, 1 or 2 torch threads), in
this process, each into its own store (so a rerun resumes, and settings can
run as separate processes). Prints, for ``mem`` and ``mem_prob``, the
Spearman rho of each pair of settings present and each setting's
planted-noise AUROC (as the memorize stage computes them). ``--models`` below
K compares the first models of each store.

    python benchmarks/precision_agreement.py [--store DIR] [--settings fp32_t2,fp32_t1,bf16_t1] [--models K]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from _setup import default_data, default_params, default_recipe
from memunlearn.config import from_params
from memunlearn.memorization import ExactConfig, SubsetModelStore, memorization_scores, train_subset_models
from memunlearn.memorization.agreement import agreement, planted_auroc, spearman
from memunlearn.memorization.exact import split_half_pearson, split_half_spearman
from memunlearn.memorization.store import key_for

SETTINGS = {"fp32_t2": ("fp32", 2), "fp32_t1": ("fp32", 1), "bf16_t1": ("bf16", 1), "bf16_t2": ("bf16", 2)}
PAIRS = [("fp32_t2", "fp32_t1"), ("fp32_t1", "bf16_t1"), ("fp32_t2", "bf16_t1"), ("fp32_t2", "bf16_t2"),
         ("bf16_t1", "bf16_t2")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("/tmp/memunlearn_precision_store"))
    parser.add_argument("--models", type=int, default=0, help="K; 0 = params.yaml's")
    parser.add_argument("--settings", default="fp32_t2,fp32_t1,bf16_t1")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    params = default_params()
    recipe = default_recipe(params)
    config = from_params(ExactConfig, params["memorize"], "memorize")
    config = dataclasses.replace(config, num_models=args.models or config.num_models)
    data = default_data(params)
    ids = data.train.example_ids.numpy()
    planted = data.flipped["example_id"]
    scores, out = {}, {"num_models": config.num_models, "epochs": recipe.epochs, "settings": {}}
    for name in args.settings.split(","):
        precision, threads = SETTINGS[name]
        r = dataclasses.replace(recipe, precision=precision)
        c = dataclasses.replace(config, threads_per_worker=threads)
        store = SubsetModelStore(args.store / name, key_for(data.train, data.test, r, c, torch.device("cpu")))
        start = time.perf_counter()
        result = train_subset_models(data.train, data.test, data.info, r, c, torch.device("cpu"), store)
        table = memorization_scores(result.runs, ids).set_index("example_id")
        scores[name] = table
        out["settings"][name] = {
            "seconds": time.perf_counter() - start, "models_trained": len(result.trained),
            "compute_seconds_per_model": sum(run.seconds for run in result.runs) / len(result.runs),
            **{f"planted_noise_auroc_{s}": planted_auroc(table[s], planted) for s in ("mem", "mem_prob")},
            **{f"split_half_spearman_{s}": split_half_spearman(result.runs, ids, s) for s in ("mem", "mem_prob")},
            "split_half_pearson_mem_prob": split_half_pearson(result.runs, ids)}
        print(name, json.dumps(out["settings"][name]), flush=True)
    out["pairs"] = {f"{a}_vs_{b}": {**{s: spearman(scores[a][s], scores[b][s]) for s in ("mem", "mem_prob")},
                                    "mem_prob_pearson": agreement(scores[a]["mem_prob"], scores[b]["mem_prob"], 200)[
                                        "pearson"]}
                    for a, b in PAIRS if a in scores and b in scores}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
