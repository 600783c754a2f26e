"""Stage `memorize`: exact memorization scores from K leave-subset-out models (METHODS.md §1)."""
from _common import MEMORIZE_DIR, METRICS_DIR, PREPARED, Timer, device, flatten, load_params, stage, track
from tqdm import tqdm

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.memorization import ExactConfig, memorization_scores, planted_auroc, train_subset_models
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig


@stage
def main() -> None:
    params = load_params("train", "memorize")
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(ExactConfig, params["memorize"], "memorize")
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    info = load_info(PREPARED / "meta.json")
    dev = device(recipe.device)

    progress = tqdm(total=config.num_models, desc="subset models", unit="model")

    def finished(run):  # each model's outputs are on disk as soon as it is done
        run.save(MEMORIZE_DIR / "models" / f"model_{run.index:04d}.npz")
        progress.update()

    with Timer() as timer:
        runs = train_subset_models(train, test, info, recipe, config, dev, on_model=finished)
    progress.close()
    scores = memorization_scores(runs, train.example_ids.numpy())
    save_table(scores, MEMORIZE_DIR / "scores.parquet")

    flipped = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    mem = scores.set_index("example_id")["mem"]
    metrics = {
        "num_models": config.num_models,
        "mean_mem": float(mem.mean()),
        "missing_fraction": float(mem.isna().mean()),
        "planted_noise_auroc": planted_auroc(mem, flipped),
        "seconds": timer.seconds,
        "examples_processed": int(sum(r.mask.sum() for r in runs)) * recipe.epochs,
        "models_per_hour": config.num_models / timer.seconds * 3600,
    }
    save_json(metrics, METRICS_DIR / "memorize.json")
    track(StageRecord("memorize", flatten(params), metrics, artifacts=[MEMORIZE_DIR / "scores.parquet"]))


if __name__ == "__main__":
    main()
