"""Stage `partition`: choose the forget set and refine it into RUM's low/mid/high subsets.

metrics/partition.json says what the forget set is made of (class histogram, or canaries by copy count on
text; planted examples, ES of F and of each subset, docs/methods.md §3) and, for images, the ES of the
low/mid/high entanglement sets this size and seed would give.
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten,
                     load_params, stage, track)

from memunlearn.config import from_params
from memunlearn.io import load_table, save_json, save_table
from memunlearn.data.owner_ids import load_owner_ids, with_owner_ids
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import PartitionConfig, choose_forget_set
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("modality", "partition")
    modality = load_modality(params["modality"], PREPARED)
    config = from_params(PartitionConfig, params["partition"], "partition")
    data = without_forgotten(modality.load(PREPARED))
    sources = modality.score_sources(data, load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                                     load_table(PROXIES_DIR / "proxies.parquet", "proxies"), TRAIN_DIR / "model.pt",
                                     device(config.device))
    forget = choose_forget_set(config, sources)
    save_table(with_owner_ids(forget, load_owner_ids(PREPARED)), PARTITION_DIR / "forget.csv")
    metrics = modality.describe_forget_set(config, forget, sources, data)
    save_json(metrics, METRICS_DIR / "partition.json")
    track(StageRecord("partition", flatten(params), flatten(metrics), artifacts=[PARTITION_DIR / "forget.csv"]))


if __name__ == "__main__":
    main()
