"""Stage `<grid>_oracle@<score>-<kind>-<seed>`: one forget set F of a grid and its retrain oracle on R = D \\ F.

Every cell of this (score, kind, seed) reads F from here and is scored
against this oracle, so F is chosen once and the oracle trained once
(docs/methods.md §3, §6). The seed drives the oracle's initialization and data
order, tie-breaks and the draw of seeded kinds (random, class). oracle.json
says what F is made of (class histogram, planted noise, ES of F and of each
RUM subset).
"""
from _common import (MEMORIZE_DIR, ORACLE_CACHE, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten, load_params,
                     log_epoch, stage, track)

import argparse
from pathlib import Path

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import (PartitionConfig, apply_partition, choose_forget_set, describe_forget_set,
                                  grid_forget_set, score_sources)
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint, save_checkpoint
from memunlearn.evaluation import model_outputs
from memunlearn.training.oracle import cached_oracle


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one forget set of a sweep grid; dvc.yaml passes these")
    parser.add_argument("--grid", default="sweep", help="the params section holding the grid (memunlearn.grid.GRIDS)")
    parser.add_argument("--group-score", required=True, help="the grid's score axis")
    parser.add_argument("--kind", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder: forget.csv, model.pt, oracle.json")
    return parser.parse_args()


@stage
def main() -> None:
    args = arguments()
    params = load_params("train", args.grid)
    grid = params[args.grid]  # not grid.SweepConfig: that imports every unlearning method, which no oracle runs
    used = {"partition": grid.get("partition") or {}, "fixed_group_score": grid.get("fixed_group_score", ""),
            "device": grid.get("device", "auto")}  # dvc.yaml: <grid>.partition, fixed_group_score, device
    config = from_params(PartitionConfig, grid_forget_set(used["partition"], args.group_score, args.kind, args.seed,
                                                          used["fixed_group_score"]), f"{args.grid}.partition")
    recipe = from_params(TrainConfig, params["train"], "train")
    info = load_info(PREPARED / "meta.json")
    train = load_split(PREPARED / "train.npz")
    dev = device(used["device"])
    sources = score_sources(train, load_checkpoint(TRAIN_DIR / "model.pt", "train")[0], info,
                            load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                            load_table(PROXIES_DIR / "proxies.parquet", "proxies"), dev)
    forget = choose_forget_set(config, sources)
    parts = apply_partition(train, forget)

    model, seconds, cached = cached_oracle(parts.retain, info, recipe, dev, args.seed, ORACLE_CACHE, on_row=log_epoch)
    save_table(forget, args.out / "forget.csv")
    save_checkpoint(model, recipe.model, info, args.out / "model.pt")
    test = load_split(PREPARED / "test.npz")
    model_outputs(model, parts.forget, parts.retain, test, parts.subsets, info, dev).save(args.out / "outputs.npz")
    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    metrics = {"seconds": seconds, "cached": cached, **describe_forget_set(forget, sources, planted)}
    save_json(metrics, args.out / "oracle.json")
    cell = {"grid": args.grid, "group_score": args.group_score, "kind": args.kind, "seed": args.seed}
    track(StageRecord(f"{args.grid}_oracle@{args.group_score}-{args.kind}-{args.seed}",
                      flatten({"train": params["train"], args.grid: used, "cell": cell}), flatten(metrics),
                      artifacts=[args.out / "forget.csv"], datasets={"F": parts.forget, "R": parts.retain}))


if __name__ == "__main__":
    main()
