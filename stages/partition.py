"""Stage `partition`: choose the forget set and refine it into RUM's low/mid/high subsets.

metrics/partition.json says what the forget set is made of (class histogram,
planted noise, ES of F and of each subset, docs/methods.md §3) and the ES of the
low/mid/high entanglement sets this size and seed would give.
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten,
                     load_params, stage, track)
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.modality.text import partition as text_stage
from memunlearn.partition import (PartitionConfig, choose_forget_set, describe_forget_set, entanglement_kinds_es,
                                  score_sources)
from memunlearn.tracking import StageRecord
from memunlearn.training import load_checkpoint


@stage
def main() -> None:
    params = load_params("partition")
    if elsewhere(params, {"text": text_stage.run}):
        return
    config = from_params(PartitionConfig, params["partition"], "partition")
    sources = score_sources(load_split(PREPARED / "train.npz"), load_checkpoint(TRAIN_DIR / "model.pt", "train")[0],
                            load_info(PREPARED / "meta.json"), load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                            load_table(PROXIES_DIR / "proxies.parquet", "proxies"), device(config.device))
    forget = choose_forget_set(config, sources)
    save_table(forget, PARTITION_DIR / "forget.csv")

    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    metrics = {**describe_forget_set(forget, sources, planted),
               "entanglement_kinds_es": entanglement_kinds_es(config, sources)}
    save_json(metrics, METRICS_DIR / "partition.json")
    track(StageRecord("partition", flatten(params), flatten(metrics), artifacts=[PARTITION_DIR / "forget.csv"]))


if __name__ == "__main__":
    main()
