"""Stage `proxies`: cheap memorization proxies and their agreement with exact scores (METHODS.md §2)."""
from _common import MEMORIZE_DIR, METRICS_DIR, PREPARED, PROXIES_DIR, TRAIN_DIR, Timer, device, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.memorization import PROXIES, ProxyInputs, agreement, compute_proxies, planted_auroc
from memunlearn.memorization.proxies import ProxyConfig
from memunlearn.tracking import StageRecord
from memunlearn.training import load_checkpoint, predict_proba


@stage
def main() -> None:
    params = load_params("proxies")
    config = from_params(ProxyConfig, params["proxies"], "proxies")
    train = load_split(PREPARED / "train.npz")
    info = load_info(PREPARED / "meta.json")
    model, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    names = list(config.names) or PROXIES.names()

    with Timer() as timer:
        inputs = ProxyInputs(
            example_ids=train.example_ids.numpy(),
            labels=train.labels.numpy(),
            learning_events=load_table(TRAIN_DIR / "learning_events.parquet", "train"),
            final_probs=predict_proba(model, train, info, device(config.device)).numpy(),
        )
        table = compute_proxies(names, inputs)
    save_table(table, PROXIES_DIR / "proxies.parquet")

    exact = load_table(MEMORIZE_DIR / "scores.parquet", "memorize").set_index("example_id")["mem"]
    flipped = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    scores = table.set_index("example_id")
    metrics = {
        name: agreement(scores[name], exact, config.top_n) | {"planted_noise_auroc": planted_auroc(scores[name], flipped)}
        for name in names
    }
    metrics["seconds"] = timer.seconds
    save_json(metrics, METRICS_DIR / "proxies.json")
    track(StageRecord("proxies", flatten(params), flatten(metrics), artifacts=[PROXIES_DIR / "proxies.parquet"]))


if __name__ == "__main__":
    main()
