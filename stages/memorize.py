"""Stage `memorize`: exact memorization scores from K leave-subset-out models (docs/methods.md §1).

Finished subset models live in a persistent store (data/memorize_store, a
cached `persist: true` output, so `dvc push`/`dvc pull` and experiments carry
it): a rerun after a crash, or with a larger K, trains only the models that
neither the store nor DVC (_store_restore.py) holds. MEMUNLEARN_RUNNER picks
where the missing models train: here (local), or as Prefect tasks on local
processes or a Dask cluster (`prefect_runner` in src/memunlearn/memorization/runners.py).
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, PREPARED, ROOT, Timer, device, environment, flatten, load_params,
                     stage, track)
from _store_restore import restore
from tqdm import tqdm
from _modality import elsewhere

from memunlearn.config import ConfigError, from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.memorization import (ExactConfig, Execution, SubsetModelStore, memorization_scores, top_influences,
                                     train_subset_models)
from memunlearn.memorization.convergence import convergence, plot_convergence
from memunlearn.memorization.exact import moved_to_environment
from memunlearn.memorization.store import key_for
from memunlearn.memorization.summary import memorize_summary
from memunlearn.modality.text import memorize as text_stage
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig
from memunlearn.training.recipe import resolved

STORE_ROOT = ROOT / "data/memorize_store"
TIMINGS = ROOT / "data/memorize_timings"  # each stored model's seconds: local, not a DVC output (store.py)
PLOTS = ROOT / "results/plots/memorization"


@stage
def main() -> None:
    params = load_params("train", "memorize")
    if elsewhere(params, {"text": text_stage.run}):
        return
    recipe = from_params(TrainConfig, params["train"], "train")
    if moved := moved_to_environment(params["memorize"]):
        raise ConfigError("\n".join(moved))
    config = from_params(ExactConfig, params["memorize"], "memorize")
    execution = Execution.from_environment(environment())
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    info = load_info(PREPARED / "meta.json")
    dev = device(recipe.device)
    recipe = resolved(recipe, dev)  # precision auto -> what this device runs: in the store key and the metrics
    key = key_for(train, test, recipe, config, dev)
    store = SubsetModelStore(STORE_ROOT, key, TIMINGS)
    restore(ROOT, STORE_ROOT, key, range(config.most_models))

    runner = None
    if execution.runner != "local":  # Prefect and Dask are imported only when asked for (docs/architecture.md rule 6)
        from memunlearn.memorization.runners import prefect_runner
        runner = prefect_runner(execution)

    progress = tqdm(total=config.most_models, desc="subset models", unit="model")  # ETA from finished models
    with Timer() as timer:
        result = train_subset_models(train, test, info, recipe, config, dev, store, runner=runner,
                                     workers=execution.workers, on_model=lambda run, reused: progress.update())
    progress.close()
    scores = memorization_scores(result.runs, train.example_ids.numpy())
    save_table(scores, MEMORIZE_DIR / "scores.parquet")
    curve, stability = convergence(result.runs, train.example_ids.numpy())
    save_table(curve, MEMORIZE_DIR / "convergence.csv")
    plots = plot_convergence(curve, scores, PLOTS)
    artifacts = [MEMORIZE_DIR / "scores.parquet", *plots]
    if config.influence_top:
        influence = top_influences(result.runs, train.example_ids.numpy(), test.example_ids.numpy(),
                                   config.influence_top)
        save_table(influence, MEMORIZE_DIR / "influence.parquet")
        artifacts.append(MEMORIZE_DIR / "influence.parquet")

    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    metrics = memorize_summary(result, scores, planted, stability, config, recipe, key, timer.seconds, dev,
                               execution)
    save_json(metrics, METRICS_DIR / "memorize.json")
    track(StageRecord("memorize", flatten(params), metrics, artifacts=artifacts))


if __name__ == "__main__":
    main()
