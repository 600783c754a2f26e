"""Stage `partition`: choose the forget set and refine it into RUM's low/mid/high subsets.

The original model's embeddings give the ``entanglement`` score (usable as
partition.group_score / refine_score) and the forget set's entanglement
score ES against R (METHODS.md §3), reported in metrics/partition.json.
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten,
                     load_params, stage, track)

import pandas as pd

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.entanglement import centroid_distances, embed_split, split_entanglement
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import PartitionConfig, make_forget_set
from memunlearn.tracking import StageRecord
from memunlearn.training import load_checkpoint


@stage
def main() -> None:
    params = load_params("partition")
    config = from_params(PartitionConfig, params["partition"], "partition")
    train = load_split(PREPARED / "train.npz")
    ids = train.example_ids.numpy()
    labels = pd.Series(train.labels.numpy(), index=ids)
    model, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    embeddings = embed_split(model, train, load_info(PREPARED / "meta.json"), device(config.device))  # (N, D)
    distances = centroid_distances(embeddings, ids)
    forget = make_forget_set(
        config,
        load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
        load_table(PROXIES_DIR / "proxies.parquet", "proxies"),
        labels,
        entanglement=distances,
    )
    save_table(forget, PARTITION_DIR / "forget.csv")

    flipped = set(load_table(PREPARED / "label_noise.csv", "prepare")["example_id"])
    by_subset = forget.groupby("subset")
    metrics = {
        "forget_size": len(forget),
        "retain_size": len(train) - len(forget),
        "planted_noise_in_forget": int(forget["example_id"].isin(flipped).sum()),
        "subset_size": by_subset.size().to_dict(),
        "subset_mean_refine_score": by_subset["refine_score"].mean().to_dict(),
        "entanglement_score": split_entanglement(embeddings, ids, forget["example_id"]),  # ES of F vs R
        "subset_mean_centroid_distance": (
            distances.reindex(forget["example_id"]).groupby(forget["subset"].to_numpy()).mean().to_dict()),
    }
    save_json(metrics, METRICS_DIR / "partition.json")
    track(StageRecord("partition", flatten(params), flatten(metrics), artifacts=[PARTITION_DIR / "forget.csv"]))


if __name__ == "__main__":
    main()
