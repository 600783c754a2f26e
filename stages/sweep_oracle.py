"""Stage `sweep_oracle@<group_score>-<kind>-<seed>`: one sweep forget set F and its retrain oracle on R = D \\ F.

Every sweep cell of this (group score, kind, seed) reads F from here and is
scored against this oracle, so F is chosen once and the oracle trained once
(METHODS.md §3, §6). The seed drives the oracle's initialization and data
order, and the draw of seeded kinds (random, class). The original model's
embeddings give the ``entanglement`` score and F's entanglement score ES.
"""
from _common import MEMORIZE_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, Timer, device, flatten, load_params, stage, track

import argparse
from pathlib import Path

import pandas as pd

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.entanglement import centroid_distances, embed_split, split_entanglement
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import PartitionConfig, apply_partition, make_forget_set
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint, save_checkpoint
from memunlearn.unlearning import METHODS, UnlearnContext


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one forget set of the sweep grid; dvc.yaml passes these")
    parser.add_argument("--group-score", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder: forget.csv, model.pt, oracle.json")
    return parser.parse_args()


@stage
def main() -> None:
    args = arguments()
    params = load_params("train", "sweep")
    sweep = {"partition": params["sweep"].get("partition") or {}, "device": params["sweep"].get("device", "auto")}
    cell = {"group_score": args.group_score, "kind": args.kind, "seed": args.seed}
    config = from_params(PartitionConfig, {**sweep["partition"], **cell}, "sweep.partition")
    recipe = from_params(TrainConfig, params["train"], "train")
    info = load_info(PREPARED / "meta.json")
    train = load_split(PREPARED / "train.npz")
    ids = train.example_ids.numpy()
    dev = device(sweep["device"])
    original, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    embeddings = embed_split(original, train, info, dev)  # (N, D)
    forget = make_forget_set(config, load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                             load_table(PROXIES_DIR / "proxies.parquet", "proxies"),
                             pd.Series(train.labels.numpy(), index=ids),
                             entanglement=centroid_distances(embeddings, ids))
    parts = apply_partition(train, forget)

    retrain = METHODS.get("retrain")
    with Timer() as timer:
        model = retrain.run(None, parts.forget, parts.retain, retrain.config({}),
                            UnlearnContext(info, recipe, dev, args.seed))
    save_table(forget, args.out / "forget.csv")
    save_checkpoint(model, recipe.model, info, args.out / "model.pt")
    flipped = set(load_table(PREPARED / "label_noise.csv", "prepare")["example_id"])
    metrics = {"seconds": timer.seconds, "forget_size": len(parts.forget), "retain_size": len(parts.retain),
               "planted_noise_in_forget": int(forget["example_id"].isin(flipped).sum()),
               "entanglement_score": split_entanglement(embeddings, ids, forget["example_id"])}
    save_json(metrics, args.out / "oracle.json")
    used = {"train": params["train"], "sweep": sweep, "cell": cell}
    track(StageRecord(f"sweep_oracle@{args.group_score}-{args.kind}-{args.seed}", flatten(used), metrics,
                      artifacts=[args.out / "forget.csv"]))


if __name__ == "__main__":
    main()
