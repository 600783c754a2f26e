"""Stage `sources` (runs on every `dvc repro`): the fingerprints of the files params name, data/source.json
(`data.path`, a dep of `prepare`) and data/init_source.json (`train.init`, a dep of `train`); see
src/memunlearn/sources.py. No MLflow run (`prepare` and `train` log what they read), and no torch or pandas
(stages/_common.py imports them where a function needs them): a no-op `dvc repro` pays for this stage alone."""
import sys

import yaml

from _common import ROOT, WORKSPACE, tracking_target
from memunlearn.io import save_json
from memunlearn.sources import DATA_SOURCE, INIT_SOURCE, data_fingerprint, init_fingerprint


def registry_version(uri: str) -> dict:
    """The registered version a models:/ URI names now (the MLflow store of stages/_common.py)."""
    from memunlearn.tracking import resolve_version

    try:
        ref = resolve_version(tracking_target(), uri)
    except LookupError as exc:
        raise ValueError(f"train.init: {exc}") from None
    return {"name": ref.name, "version": ref.version, "run_id": ref.run_id}


def main() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text()) or {}
    data, init = params.get("data") or {}, (params.get("train") or {}).get("init", "")
    try:
        if not isinstance(init, str):
            raise ValueError(f"train.init: got {init!r}; set a path, a models:/ URI or \"\" (train the model)")
        records = {DATA_SOURCE: data_fingerprint(data.get("dataset", "mnist_embedded"), data.get("path", ""),
                                                 WORKSPACE)}
        try:
            records[INIT_SOURCE] = init_fingerprint(init, WORKSPACE, registry_version)
        except FileNotFoundError:  # train's input, not prepare's: the train stage stops on it with the same line
            records[INIT_SOURCE] = {"init": init, "missing": True}
    except (ValueError, FileNotFoundError) as exc:  # one line naming the key or file and the fix
        sys.exit(f"error: {exc}")
    for path, record in records.items():  # written only when both are known
        save_json(record, ROOT / path)


if __name__ == "__main__":
    main()
