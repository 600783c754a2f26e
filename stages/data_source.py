"""Stage `data_source`: the data's content fingerprint, data/source.json (src/memunlearn/data_source.py).

It runs on every `dvc repro` (`always_changed`) and is cheap; `prepare` depends on its output, so a changed file
under data.path reruns `prepare` and what follows, and an unchanged one reruns nothing downstream.
"""
from _common import ROOT, WORKSPACE, flatten, load_params, stage, track

from memunlearn.data_source import SOURCE_FILE, fingerprint
from memunlearn.io import save_json
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    data = load_params("data")["data"]
    source = fingerprint(data.get("dataset", "mnist_embedded"), data.get("path", ""), WORKSPACE)
    save_json(source, ROOT / SOURCE_FILE)
    track(StageRecord("data_source", flatten({"source": source})))


if __name__ == "__main__":
    main()
