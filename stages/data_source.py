"""Stage `data_source`: the data's content fingerprint, data/source.json (src/memunlearn/data_source.py).

It runs on every `dvc repro` (`always_changed`) and is cheap: no MLflow run of its own (prepare logs the
fingerprint with its params), so a repro that changes nothing records nothing. `prepare` depends on its output, so
a changed file under data.path reruns `prepare` and what follows, and an unchanged one reruns nothing downstream.
"""
import sys

from _common import ROOT, WORKSPACE, load_params

from memunlearn.data_source import SOURCE_FILE, fingerprint, rooted
from memunlearn.io import save_json


def main() -> None:
    try:
        data = load_params("data")["data"]
        source = fingerprint(data.get("dataset", "mnist_embedded"), data.get("path", ""), WORKSPACE)
    except (FileNotFoundError, KeyError) as exc:  # one line naming the key or file and the fix
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        sys.exit(1)
    save_json(source, ROOT / SOURCE_FILE)


if __name__ == "__main__":
    main()
