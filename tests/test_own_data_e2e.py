"""Your own data and your own model end to end (docs/own-data.md; docs/params.md "Start from your own model"): a
folder of PNGs through the real DVC stages, with the owner's ids in every output; a deletion request names the
owner's ids; an unchanged folder reruns only the fingerprint stage, a changed file reruns prepare; a locally saved
checkpoint is then the run's original (train.init) through evaluate. A JSONL file: tests/test_own_text_e2e.py.
Tiny data (42 8x8 images) and models: the wiring is the point, not the figures."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from e2e_project import commit, dvc, set_params, tiny_project  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.e2e

UP_TO_PARTITION = ["sources", "prepare", "train", "memorize", "proxies", "partition"]
CLASSES = ("ant", "bee", "cow")
LENIENT = {"device": "cpu", "audit_margin": 0.5, "max_utility_drop": 1.0, "max_overforgetting": 1.0}
TINY_IMAGES = {
    "data": {"dataset": "image_folder", "path": "pngs", "max_train": 0, "max_test": 0, "noise_fraction": 0.1,
             "validation_fraction": 0.5},
    "train": {"epochs": 2, "lr_milestones": [], "device": "cpu", "batch_size": 16},
    "train_records": {"first_epoch_grads": []},
    "memorize": {"num_models": 2},
    "proxies": {"top_n": 3, "holdout_max_epochs": 1, "device": "cpu"},
    "partition": {"size": 6, "entanglement_bins": 3, "device": "cpu"},
    "methods": {"neggrad_plus": {"epochs": 1}},
    "requests": LENIENT,
}


def ran(output: str) -> list[str]:
    return [s for s in UP_TO_PARTITION if f"Running stage '{s}'" in output]


def write_pngs(root, per_class: int = 14) -> None:
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(0, 255, (len(CLASSES), 8, 8))
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(prototypes[label] + rng.normal(0, 30, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    with tiny_project(tmp_path_factory.mktemp("own_images"), TINY_IMAGES) as root:
        write_pngs(root / "pngs")
        commit(root)
        yield root, dvc(root, "repro", "partition", timeout=900)


def owners_in_outputs(root) -> tuple[list[str], pd.DataFrame]:
    """(the map's owner ids, the forget set), checking that the forget set, the scores and the proxies each name
    every row's owner beside its example id, as data/prepared/owner_ids.csv maps them."""
    owners = pd.read_csv(root / "data/prepared/owner_ids.csv", dtype={"owner_id": str})
    by_id = dict(zip(owners["example_id"], owners["owner_id"]))
    forget = pd.read_csv(root / "data/partition/forget.csv", dtype={"owner_id": str})
    for table in (forget, pd.read_parquet(root / "data/memorize/scores.parquet"),
                  pd.read_parquet(root / "data/proxies/proxies.parquet")):
        assert list(table.columns[:2]) == ["example_id", "owner_id"]
        assert table["owner_id"].tolist() == [by_id[e] for e in table["example_id"]]
    return owners["owner_id"].tolist(), forget


def test_a_folder_of_pngs_runs_to_the_forget_set_with_the_owners_ids(images):
    root, first = images
    assert ran(first.stdout) == UP_TO_PARTITION
    owners, _ = owners_in_outputs(root)
    assert sorted(owners) == sorted(f"{c}/{i:02d}.png" for c in CLASSES for i in range(14))
    source = json.loads((root / "data/source.json").read_text())
    assert source["dataset"] == "image_folder" and source["path"] == "pngs" and source["files"] == 42


def test_an_unchanged_folder_reruns_only_the_fingerprint_and_a_changed_file_reruns_prepare(images):
    root, _ = images
    assert ran(dvc(root, "repro", "partition").stdout) == ["sources"]
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "pngs/bee/03.png")
    assert ran(dvc(root, "repro", "prepare").stdout) == ["sources", "prepare"]


def test_a_deletion_request_names_the_owners_ids(images, capsys):
    from memunlearn.cli import main
    from memunlearn.forgotten import read_forgotten
    from memunlearn.requests import ledger

    root, _ = images
    owners = pd.read_csv(root / "data/prepared/owner_ids.csv")
    train = np.load(root / "data/prepared/train.npz")["example_ids"]
    names = owners.set_index("example_id").loc[train[:3], "owner_id"].tolist()  # e.g. ant/00.png
    (root / "ids.json").write_text(json.dumps(names))
    with pytest.raises(SystemExit) as exit_:
        main(["forget", "--ids", str(root / "ids.json"), "--request-id", "owner-1", "--root", str(root)])
    out = capsys.readouterr()
    assert exit_.value.code in (0, None), out.err
    entry = ledger.read(root / "requests/ledger.jsonl")[-1]
    assert sorted(entry["owner_ids"]) == sorted(names) and sorted(entry["ids"]) == sorted(train[:3].tolist())
    report = json.loads((root / "requests/reports/owner-1.json").read_text())
    assert sorted(report["ids"]["forgotten"]) == sorted(names)
    assert read_forgotten(root / "requests/ledger.jsonl", root / "data/prepared") == set(train[:3].tolist())
    with pytest.raises(SystemExit) as exit_:  # the same owners again: already forgotten, a no-op
        main(["forget", "--ids", str(root / "ids.json"), "--request-id", "owner-2", "--root", str(root)])
    assert exit_.value.code in (0, None) and "(all 3 ids were forgotten by earlier requests)" in capsys.readouterr().out
    before = (root / "requests/ledger.jsonl").read_bytes()
    (root / "bad.json").write_text(json.dumps(["dog/00.png"]))
    with pytest.raises(SystemExit) as exit_:
        main(["forget", "--ids", str(root / "bad.json"), "--request-id", "owner-3", "--root", str(root)])
    assert exit_.value.code == 1 and "1 unknown id(s) (dog/00.png)" in capsys.readouterr().err
    assert (root / "requests/ledger.jsonl").read_bytes() == before


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


def test_a_saved_checkpoint_is_the_original_of_a_run(images):
    """Loaded weights exactly; the run goes on through evaluate, the proxies that need training records skipped
    with the reason; the checkpoint's content, not its name, decides whether train reruns; the registered
    original loads back by its models:/ URI. (Last in this module: it turns the PNG run's original into a loaded
    one.)"""
    import mlflow

    root, _ = images
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
    stale = json.loads(dvc(root, "status", "train", "--json").stdout)
    assert stale["train"] == [{"changed deps": {"data/init_source.json": "modified"}}]

    loaded = max(int(v.version) for v in mlflow.MlflowClient().search_model_versions("name='memunlearn-original'"))
    set_params(root, {"train": {"init": f"models:/memunlearn-original/{loaded}"}})  # the version that run registered
    assert "Running stage 'train'" in dvc(root, "repro", "train").stdout
    assert same(trained_state(root), saved)
    assert json.loads((root / "metrics/train.json").read_text())["init_version"] == str(loaded)
