"""Stage `partition`: choose the forget set and refine it into RUM's low/mid/high subsets.

metrics/partition.json says what the forget set is made of (class histogram,
planted noise, ES of F and of each subset, docs/methods.md §3) and the ES of the
low/mid/high entanglement sets this size and seed would give.
"""
from _common import METRICS_DIR, PARTITION_DIR, PREPARED, device, flatten, load_params, load_score_sources, stage, track

from memunlearn.config import from_params
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import PartitionConfig, choose_forget_set, describe_forget_set, entanglement_kinds_es
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("partition")
    config = from_params(PartitionConfig, params["partition"], "partition")
    sources = load_score_sources(device(config.device))
    forget = choose_forget_set(config, sources)
    save_table(forget, PARTITION_DIR / "forget.csv")

    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    metrics = {**describe_forget_set(forget, sources, planted),
               "entanglement_kinds_es": entanglement_kinds_es(config, sources)}
    save_json(metrics, METRICS_DIR / "partition.json")
    track(StageRecord("partition", flatten(params), flatten(metrics), artifacts=[PARTITION_DIR / "forget.csv"]))


if __name__ == "__main__":
    main()
