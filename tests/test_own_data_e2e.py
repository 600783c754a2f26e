"""Your own data and your own model end to end (docs/own-data.md; docs/params.md "Start from your own model").

The session's reproduced TINY project reads a folder of PNGs (``data.dataset: image_folder``, tests/e2e_project.py
``write_digits``: an official train/test split, class folders "0-zero" ..., an ids.csv of owner ids), and every
pipeline, grids and deployments module runs on it. This module checks on its own copy what they do not: the
owner's ids in every output and in `memunlearn top`, the class folders' names; an unchanged folder reruns only
the fingerprint stage, a changed file reruns prepare; a deletion request names the owner's ids; a locally saved
checkpoint is then the run's original (train.init) through evaluate. A JSONL file: tests/test_text_pipeline_e2e.py.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from e2e_project import (DIGIT_NAMES, DIGITS, copied_project, dvc, owners_in_outputs,  # tests/ is on sys.path
                         set_params, stale, tiny_project)  # under pytest

pytestmark = pytest.mark.e2e

LENIENT = {"device": "cpu", "audit_margin": 0.5, "max_utility_drop": 1.0, "max_overforgetting": 1.0}


@pytest.fixture(scope="module")
def project(reproduced_tiny_project, tmp_path_factory):
    """This module's copy of the session's reproduced TINY project (tests/e2e_project.py)."""
    with copied_project(reproduced_tiny_project, tmp_path_factory.mktemp("own_data") / "project") as root:
        yield root


def ran(output: str) -> list[str]:
    """The stages up to partition that a `dvc repro` ran, the always-run fingerprint stage included."""
    return [s for s in ("sources", "prepare", "train", "memorize", "proxies", "partition")
            if f"Running stage '{s}'" in output]


def test_prepare_still_reads_the_shipped_digits(tmp_path):
    """The default dataset (mnist_embedded, which every other e2e module's folder of PNGs is cut from): the
    prepare stage under DVC, the owner ids its example ids as strings, meta.json without class names."""
    with tiny_project(tmp_path, {"data": {"max_train": 300, "max_test": 100, "noise_fraction": 0.05}}) as root:
        assert ran(dvc(root, "repro", "prepare").stdout) == ["sources", "prepare"]
        owners = pd.read_csv(root / "data/prepared/owner_ids.csv", dtype={"owner_id": str})
        assert len(owners) == 400 and (owners["owner_id"] == owners["example_id"].astype(str)).all()
        assert len(pd.read_csv(root / "data/prepared/label_noise.csv")) == 15  # 5% of 300
        meta = json.loads((root / "data/prepared/meta.json").read_text())
        assert meta["name"] == "mnist_embedded" and "class_names" not in meta


def test_the_folder_of_pngs_reaches_every_output_with_its_owner_ids_and_class_names(project, capsys):
    from memunlearn.cli import main
    from memunlearn.data import load_info

    owners, _ = owners_in_outputs(project)
    assert sorted(owners) == sorted(pd.read_csv(project / DIGITS / "ids.csv")["id"])  # every digit kept: ids.csv's
    source = json.loads((project / "data/source.json").read_text())
    assert (source["dataset"], source["path"], source["files"]) == ("image_folder", DIGITS, 701)  # + ids.csv
    info = load_info(project / "data/prepared/meta.json")
    assert info.class_names == tuple(f"{d}-{name}" for d, name in enumerate(DIGIT_NAMES))
    with pytest.raises(SystemExit) as exit_:
        main(["top", "--n", "5", "--root", str(project)])
    out = capsys.readouterr().out
    assert exit_.value.code in (0, None), out
    for line in out.splitlines()[1:6]:  # rank, example id, owner id, label (the folder's name), score
        assert line.split()[2].startswith("digit-") and line.split()[3] in info.class_names, line


def test_an_unchanged_folder_reruns_only_the_fingerprint_and_a_changed_file_reruns_prepare(project):
    assert ran(dvc(project, "repro", "prepare").stdout) == ["sources"]
    png = next((project / DIGITS / "train/3-three").glob("*.png"))
    before = png.read_bytes()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
    assert ran(dvc(project, "repro", "prepare").stdout) == ["sources", "prepare"]
    png.write_bytes(before)  # the old bytes: prepare's old outputs, and nothing after it is stale
    dvc(project, "repro", "prepare")
    assert stale(project) == {}


def test_a_deletion_request_names_the_owners_ids(project, capsys):
    """`memunlearn forget --ids` with owner ids: the ledger and the report name them, the stages map them to
    example ids; the same owners again are a no-op, an unknown one is refused. (The ledger is restored after.)"""
    from memunlearn.cli import main
    from memunlearn.forgotten import read_forgotten
    from memunlearn.requests import ledger

    set_params(project, {"requests": LENIENT})  # a gate for tiny models; no stage reads it
    path = project / "requests/ledger.jsonl"
    empty = path.read_bytes()
    owners = pd.read_csv(project / "data/prepared/owner_ids.csv")
    train = np.load(project / "data/prepared/train.npz")["example_ids"]
    names = owners.set_index("example_id").loc[train[:3], "owner_id"].tolist()  # e.g. digit-00000
    (project / "ids.json").write_text(json.dumps(names))
    with pytest.raises(SystemExit) as exit_:
        main(["forget", "--ids", str(project / "ids.json"), "--request-id", "owner-1", "--root", str(project)])
    out = capsys.readouterr()
    assert exit_.value.code in (0, None), out.err
    entry = ledger.read(path)[-1]
    assert sorted(entry["owner_ids"]) == sorted(names) and sorted(entry["ids"]) == sorted(train[:3].tolist())
    report = json.loads((project / "requests/reports/owner-1.json").read_text())
    assert sorted(report["ids"]["forgotten"]) == sorted(names)
    assert read_forgotten(path, project / "data/prepared") == set(train[:3].tolist())
    with pytest.raises(SystemExit) as exit_:  # the same owners again: already forgotten, a no-op
        main(["forget", "--ids", str(project / "ids.json"), "--request-id", "owner-2", "--root", str(project)])
    assert exit_.value.code in (0, None) and "(all 3 ids were forgotten by earlier requests)" in capsys.readouterr().out
    after = path.read_bytes()
    (project / "bad.json").write_text(json.dumps(["digit-99999"]))
    with pytest.raises(SystemExit) as exit_:
        main(["forget", "--ids", str(project / "bad.json"), "--request-id", "owner-3", "--root", str(project)])
    assert exit_.value.code == 1 and "1 unknown id(s) (digit-99999)" in capsys.readouterr().err
    assert path.read_bytes() == after
    path.write_bytes(empty)


CHECKPOINT = "models/elsewhere.pt"  # relative to the project's root


def save_elsewhere(root, seed: int) -> dict:
    """A small CNN with seed-``seed`` weights for the prepared data, saved as a checkpoint at CHECKPOINT; its state."""
    from memunlearn.data import load_info
    from memunlearn.models import build_model
    from memunlearn.training import save_checkpoint

    info = load_info(root / "data/prepared/meta.json")
    model = build_model("small_cnn", info.in_channels, info.num_classes, info.image_size, seed=seed)
    (root / "models").mkdir(exist_ok=True)
    save_checkpoint(model, "small_cnn", info, root / CHECKPOINT)
    return model.state_dict()


def trained_state(root) -> dict:
    return torch.load(root / "data/train/model.pt", weights_only=True)["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_saved_checkpoint_is_the_original_of_a_run(project):
    """Loaded weights exactly; the run goes on through evaluate, the proxies that need training records skipped
    with the reason; the checkpoint's content, not its name, decides whether train reruns; the registered
    original loads back by its models:/ URI. (Last in this module: it turns the run's original into a loaded
    one.)"""
    import mlflow

    root = project
    saved = save_elsewhere(root, seed=7)
    set_params(root, {"train": {"init": CHECKPOINT}})
    out = dvc(root, "repro", "evaluate").stdout
    assert same(trained_state(root), saved)  # loaded, not trained: the saved weights exactly
    train = json.loads((root / "metrics/train.json").read_text())
    assert CHECKPOINT in train["init"] and "memunlearn checkpoint" in train["init"]
    assert 0 <= train["test_acc"] <= 1 and len(train["init_sha256"]) == 64
    assert not (root / "data/train/learning_events.parquet").exists()
    cost = json.loads((root / "data/proxies/cost.json").read_text())
    assert {"confidence", "loss_curvature"} <= set(cost["skipped"]) and "final_loss" in cost["seconds"]
    assert "proxies: confidence skipped: needs records of the original's training" in out
    assert (root / "results/evaluation.csv").exists() and (root / "data/oracle/model.pt").exists()
    owners_in_outputs(root)  # the owner's ids survive the loaded original

    dvc(root, "repro", "sources")  # the same bytes: train stays up to date
    assert json.loads(dvc(root, "status", "train", "--json").stdout) == {}
    save_elsewhere(root, seed=8)  # a new checkpoint at the same path makes train stale
    dvc(root, "repro", "sources")
    stale_train = json.loads(dvc(root, "status", "train", "--json").stdout)
    assert stale_train["train"] == [{"changed deps": {"data/init_source.json": "modified"}}]

    loaded = max(int(v.version) for v in mlflow.MlflowClient().search_model_versions("name='memunlearn-original'"))
    set_params(root, {"train": {"init": f"models:/memunlearn-original/{loaded}"}})  # the version that run registered
    assert "Running stage 'train'" in dvc(root, "repro", "train").stdout
    assert same(trained_state(root), saved)
    assert json.loads((root / "metrics/train.json").read_text())["init_version"] == str(loaded)
