"""Hand a stage to its modality's implementation: the image path is each stage script's own body; a text run
(data/prepared/meta.json says so; for `prepare`, data.dataset) goes to the script's module under
src/memunlearn/modality/text/, which the script names (so its DVC deps stay the code it runs)."""
from _common import (MEMORIZE_DIR, METRICS_DIR, ORACLE_CACHE, ORACLE_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR,
                     RESULTS_DIR, ROOT, SWEEP_DATA_DIR, TRAIN_DIR, UNLEARN_CACHE, UNLEARN_DIR, flatten, log_epoch,
                     track)

from memunlearn.modality import IMAGE, StagePaths, prepared_modality

PATHS = StagePaths(prepared=PREPARED, train=TRAIN_DIR, memorize=MEMORIZE_DIR,
                   memorize_store=ROOT / "data/memorize_store", memorize_plots=ROOT / "results/plots/memorization",
                   proxies=PROXIES_DIR, partition=PARTITION_DIR, oracle=ORACLE_DIR, unlearn=UNLEARN_DIR,
                   metrics=METRICS_DIR, results=RESULTS_DIR, sweep=SWEEP_DATA_DIR, oracle_cache=ORACLE_CACHE,
                   unlearn_cache=UNLEARN_CACHE)


def elsewhere(params, implementations, modality: str | None = None) -> bool:
    """Run the stage with ``implementations[<modality>]`` (modality: the prepared data's unless given) and log
    its record; False when the run is an image run (the script's own body runs)."""
    modality = modality or prepared_modality(PREPARED)
    if modality == IMAGE:
        return False
    record = implementations[modality](params, PATHS, log_epoch)
    record.params = flatten(params)
    track(record)
    return True
