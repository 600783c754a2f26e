"""Stage `proxies`: every memorization proxy per training example (docs/methods.md §2), with its cost."""
from _common import METRICS_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, device, flatten, load_params, stage, track
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split, load_validation
from memunlearn.io import load_json, load_table, save_json, save_table
from memunlearn.memorization import ProxyConfig, ProxyInputs, compute_proxies, proxy_costs
from memunlearn.memorization.proxies import recorded_proxies
from memunlearn.modality.text import proxies as text_stage
from memunlearn.tracking import StageRecord
from memunlearn.training import load_checkpoint


@stage
def main() -> None:
    params = load_params("proxies")
    if elsewhere(params, {"text": text_stage.run}):
        return
    config = from_params(ProxyConfig, params["proxies"], "proxies")
    curvature_file = TRAIN_DIR / "loss_curvature.parquet"
    curvature = load_table(curvature_file, "train") if curvature_file.exists() else None
    names = list(config.names) or recorded_proxies(curvature)
    inputs = ProxyInputs(
        train=load_split(PREPARED / "train.npz"),
        # held-out data is the validation split (the test set is for evaluation only); only holdout_retrain reads it
        heldout=load_validation(PREPARED) if "holdout_retrain" in names else None,
        info=load_info(PREPARED / "meta.json"),
        model=load_checkpoint(TRAIN_DIR / "model.pt", "train")[0],
        device=device(config.device),
        config=config,
        learning_events=load_table(TRAIN_DIR / "learning_events.parquet", "train"),
        curvature=curvature,
    )
    table, own_seconds = compute_proxies(names, inputs)
    save_table(table, PROXIES_DIR / "proxies.parquet")

    recorded = load_json(METRICS_DIR / "train.json", "train")
    seconds = proxy_costs(names, own_seconds, {"learning_events": recorded["learning_event_seconds"],
                                               "curvature": recorded["curvature_seconds"],
                                               "curvature_rademacher": recorded.get("curvature_rademacher_seconds",
                                                                                    0.0)})
    metrics = {"seconds": seconds, "examples_processed": len(inputs.train)}
    save_json(metrics, PROXIES_DIR / "cost.json")
    track(StageRecord("proxies", flatten(params), flatten(metrics), artifacts=[PROXIES_DIR / "proxies.parquet"]))


if __name__ == "__main__":
    main()
