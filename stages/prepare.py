"""Stage `prepare`: dataset -> train/validation/test splits with example ids and the planted examples (image:
label noise; text: canaries), by the run's modality."""
import json

from _common import PREPARED, RAW_DIR, ROOT, WORKSPACE, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.data import PrepareConfig
from memunlearn.sources import DATA_SOURCE, rooted
from memunlearn.modality import dataset_problems, load_modality
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("modality", "data")
    if problems := dataset_problems(params):
        raise ValueError(problems[0])
    modality = load_modality(params["modality"])
    # a relative data.path is the checkout's (an experiment's temporary copy holds only what git tracks)
    data = {**params["data"], "path": rooted(params["data"].get("path", ""), WORKSPACE)}
    config = from_params(PrepareConfig, data, "data")
    metrics, artifacts = modality.prepare(config, RAW_DIR, PREPARED)
    source = ROOT / DATA_SOURCE  # the sources stage's fingerprint: which files this run read
    recorded = {"source": json.loads(source.read_text())} if source.exists() else {}
    track(StageRecord("prepare", flatten({**params, **recorded}), metrics, artifacts=artifacts))


if __name__ == "__main__":
    main()
