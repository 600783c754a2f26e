"""Stage `init_source` (always runs): the fingerprint of the model ``train.init`` names (a checkpoint's sha256, a
registered version), in ``data/init_source.json``; the train stage depends on it, so a changed checkpoint reruns
``train`` and an unchanged one leaves it cached. No MLflow run: it records nothing worth a run."""
import sys

from _common import ROOT, WORKSPACE, load_params, tracking_target

from memunlearn.init_source import init_fingerprint
from memunlearn.io import save_json

SOURCE = ROOT / "data/init_source.json"


def registry_version(uri: str) -> dict:
    from memunlearn.tracking import resolve_version

    try:
        ref = resolve_version(tracking_target(), uri)
    except LookupError as exc:
        raise ValueError(f"train.init: {exc}") from None
    return {"name": ref.name, "version": ref.version, "run_id": ref.run_id}


def main() -> None:
    init = load_params("train")["train"].get("init", "")
    try:
        if not isinstance(init, str):
            raise ValueError(f"train.init: got {init!r}; set a path, a models:/ URI or \"\" (train the model)")
        save_json(init_fingerprint(init, WORKSPACE, registry_version), SOURCE)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
