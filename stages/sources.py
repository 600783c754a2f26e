"""Stage `sources` (runs on every `dvc repro`): the fingerprints of the files params name, data/source.json
(`data.path`, a dep of `prepare`) and data/init_source.json (`train.init`, a dep of `train`); see
src/memunlearn/sources.py. No MLflow run: `prepare` and `train` log what they read."""
import sys

from _common import ROOT, WORKSPACE, load_params, tracking_target

from memunlearn.io import save_json
from memunlearn.sources import DATA_SOURCE, INIT_SOURCE, data_fingerprint, init_fingerprint


def registry_version(uri: str) -> dict:
    from memunlearn.tracking import resolve_version

    try:
        ref = resolve_version(tracking_target(), uri)
    except LookupError as exc:
        raise ValueError(f"train.init: {exc}") from None
    return {"name": ref.name, "version": ref.version, "run_id": ref.run_id}


def main() -> None:
    params = load_params("data", "train")
    data, init = params["data"], params["train"].get("init", "")
    try:
        if not isinstance(init, str):
            raise ValueError(f"train.init: got {init!r}; set a path, a models:/ URI or \"\" (train the model)")
        records = {DATA_SOURCE: data_fingerprint(data.get("dataset", "mnist_embedded"), data.get("path", ""),
                                                 WORKSPACE),
                   INIT_SOURCE: init_fingerprint(init, WORKSPACE, registry_version)}
    except (ValueError, FileNotFoundError, KeyError) as exc:  # one line naming the key or file and the fix
        sys.exit(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}")
    for path, record in records.items():  # written only when both are known: no half-updated pair
        save_json(record, ROOT / path)


if __name__ == "__main__":
    main()
