"""Stage `memorize`: exact memorization scores from K leave-subset-out models (docs/methods.md §1).

An image run keeps finished subset models in a persistent store (data/memorize_store, a cached
`persist: true` output, so `dvc push`/`dvc pull` and experiments carry it): a rerun after a crash, or with a
larger K, trains only the models that neither the store nor DVC (_store_restore.py) holds. MEMUNLEARN_RUNNER
picks where the missing models train: here (local), or as Prefect tasks on local processes or a Dask cluster
(`prefect_runner` in src/memunlearn/memorization/runners.py).
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, PREPARED, ROOT, device, environment, flatten, load_params, stage,
                     track)
from _store_restore import restore

from memunlearn.config import ConfigError, from_params
from memunlearn.io import save_json, save_table
from memunlearn.memorization.exact import Execution, ExactConfig, moved_to_environment
from memunlearn.data.owner_ids import load_owner_ids, with_owner_ids
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import SubsetModels, load_modality
from memunlearn.tracking import StageRecord
from memunlearn.training.recipe import recipe_for

STORE_ROOT = ROOT / "data/memorize_store"
TIMINGS = ROOT / "data/memorize_timings"  # each stored model's seconds: local, not a DVC output (store.py)
PLOTS = ROOT / "results/plots/memorization"


@stage
def main() -> None:
    params = load_params("modality", "train", "memorize")
    modality = load_modality(params["modality"], PREPARED)
    if moved := moved_to_environment(params["memorize"]):
        raise ConfigError("\n".join(moved))
    config = from_params(ExactConfig, params["memorize"], "memorize")
    recipe = recipe_for(params, "subset")  # train with memorize.recipe over it
    execution = Execution.from_environment(environment())
    data = without_forgotten(modality.load(PREPARED))
    dev = device(recipe.device)
    runner = None
    if execution.runner != "local":  # Prefect and Dask are imported only when asked for (docs/architecture.md rule 6)
        from memunlearn.memorization.runners import prefect_runner
        runner = prefect_runner(execution)
    STORE_ROOT.mkdir(parents=True, exist_ok=True)  # a DVC output, also where no model is stored

    subset_models = SubsetModels(STORE_ROOT, TIMINGS, execution, runner,
                                 lambda key, ks: restore(ROOT, STORE_ROOT, key, ks))
    scores, metrics, artifacts = modality.memorize(data, recipe, config, dev, MEMORIZE_DIR, PLOTS, subset_models)
    save_table(with_owner_ids(scores, load_owner_ids(PREPARED)), MEMORIZE_DIR / "scores.parquet")
    save_json(metrics, METRICS_DIR / "memorize.json")
    track(StageRecord("memorize", flatten(params), metrics, artifacts=[MEMORIZE_DIR / "scores.parquet", *artifacts]))


if __name__ == "__main__":
    main()
