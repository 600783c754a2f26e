"""Stage `proxies`: every memorization proxy that applies per training example (docs/methods.md §2), with its
cost (the recording's, for the proxies read off the train stage's records). When `train.init` loaded the original,
the proxies that need its training records are skipped and listed with the reason (cost.json `skipped`)."""
from _common import METRICS_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.io import load_json, save_json, save_table
from memunlearn.memorization.proxies import ProxyConfig, compute_proxies, final_model_proxies, proxy_costs
from memunlearn.data.owner_ids import load_owner_ids, with_owner_ids
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("modality", "proxies")
    modality = load_modality(params["modality"], PREPARED)
    config = from_params(ProxyConfig, params["proxies"], "proxies")
    data = without_forgotten(modality.load(PREPARED))
    recorded = load_json(METRICS_DIR / "train.json", "train")
    names, inputs = modality.proxy_inputs(data, config, TRAIN_DIR, device(config.device))
    names, skipped = final_model_proxies(names, bool(config.names), recorded.get("init", ""))
    for name, reason in skipped.items():
        print(f"proxies: {name} skipped: {reason}")
    table, own_seconds = compute_proxies(names, inputs)
    save_table(with_owner_ids(table, load_owner_ids(PREPARED)), PROXIES_DIR / "proxies.parquet")

    seconds = proxy_costs(names, own_seconds, {"learning_events": recorded["learning_event_seconds"],
                                               "curvature": recorded["curvature_seconds"],
                                               "curvature_rademacher": recorded.get("curvature_rademacher_seconds",
                                                                                    0.0)})
    metrics = {"seconds": seconds, "examples_processed": len(inputs.train), **({"skipped": skipped} if skipped else {})}
    save_json(metrics, PROXIES_DIR / "cost.json")
    track(StageRecord("proxies", flatten(params), flatten(metrics), artifacts=[PROXIES_DIR / "proxies.parquet"]))


if __name__ == "__main__":
    main()
