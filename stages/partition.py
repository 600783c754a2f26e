"""Stage `partition`: choose the forget set and refine it into RUM's low/mid/high subsets."""
from _common import MEMORIZE_DIR, METRICS_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR, flatten, load_params, stage, track

import pandas as pd

from memunlearn.config import from_params
from memunlearn.data import load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import PartitionConfig, make_forget_set
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("partition")
    config = from_params(PartitionConfig, params["partition"], "partition")
    train = load_split(PREPARED / "train.npz")
    labels = pd.Series(train.labels.numpy(), index=train.example_ids.numpy())
    forget = make_forget_set(
        config,
        load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
        load_table(PROXIES_DIR / "proxies.parquet", "proxies"),
        labels,
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
    }
    save_json(metrics, METRICS_DIR / "partition.json")
    track(StageRecord("partition", flatten(params), flatten(metrics), artifacts=[PARTITION_DIR / "forget.csv"]))


if __name__ == "__main__":
    main()
