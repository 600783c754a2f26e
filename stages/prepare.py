"""Stage `prepare`: dataset -> train/validation/test splits with example ids and planted label noise."""
from _common import PREPARED, RAW_DIR, Timer, flatten, load_params, stage, track
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import VALIDATION_FILE, PrepareConfig, data_modality, prepare, save_info, save_split
from memunlearn.io import save_table
from memunlearn.modality.text import prepare as text_stage
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("data")
    config = from_params(PrepareConfig, params["data"], "data")
    if elsewhere(params, {"text": text_stage.run}, data_modality(config.dataset)):
        return
    with Timer() as timer:
        data = prepare(config, RAW_DIR)
    save_split(data.train, PREPARED / "train.npz")
    save_split(data.test, PREPARED / "test.npz")
    (PREPARED / VALIDATION_FILE).unlink(missing_ok=True)  # no stale split when validation_fraction turns 0
    if data.validation is not None:
        save_split(data.validation, PREPARED / VALIDATION_FILE)
    save_table(data.flipped, PREPARED / "label_noise.csv")
    save_info(data.info, PREPARED / "meta.json")
    track(StageRecord("prepare", flatten(params), {
        "n_train": len(data.train), "n_test": len(data.test), "n_flipped": len(data.flipped),
        "n_validation": len(data.validation) if data.validation is not None else 0,
        "seconds": timer.seconds,
    }, artifacts=[PREPARED / "meta.json", PREPARED / "label_noise.csv"]))


if __name__ == "__main__":
    main()
