"""`memunlearn store ls | verify | gc` on a real store built by train_subset_models (issue 12, item 3)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from memunlearn.cli import main
from memunlearn.data.splits import save_split
from memunlearn.memorization import ExactConfig, SubsetModelStore, train_subset_models
from memunlearn.memorization.store import key_for
from memunlearn.training import TrainConfig

CPU = torch.device("cpu")
RECIPE = TrainConfig(model="small_cnn", epochs=1, batch_size=64, lr=0.05, device="cpu")
CURRENT = ExactConfig(num_models=3)
OTHER = ExactConfig(num_models=2, seed=1)  # another base seed: another key


@pytest.fixture(scope="module")
def project(tmp_path_factory, synthetic):
    """A folder with params.yaml, data/prepared and a store holding two keys: the current params' and another."""
    root = tmp_path_factory.mktemp("store_project")
    train, test, info, _ = synthetic
    save_split(train, root / "data/prepared/train.npz")
    save_split(test, root / "data/prepared/test.npz")
    write_params(root, RECIPE, CURRENT)
    keys = {}
    for name, config in (("current", CURRENT), ("other", OTHER)):
        keys[name] = key_for(train, test, RECIPE, config)  # what the memorize stage calls
        train_subset_models(train, test, info, RECIPE, config, CPU,
                            SubsetModelStore(root / "data/memorize_store", keys[name]))
    return root, keys


def write_params(root, recipe: TrainConfig, config: ExactConfig) -> None:
    params = {"train": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()},
              "memorize": dataclasses.asdict(config)}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def store(root, capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["store", *args, "--root", str(root / "data/memorize_store"),
              *(["--params", str(root / "params.yaml"), "--prepared", str(root / "data/prepared")]
                if args[0] != "verify" else [])])
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_ls_lists_each_key_with_its_models_and_bytes_and_marks_the_current_one(project, capsys):
    root, keys = project
    code, out, _ = store(root, capsys, "ls")
    lines = out.splitlines()
    assert code == 0
    current = next(line for line in lines if line.startswith(keys["current"]))
    other = next(line for line in lines if line.startswith(keys["other"]))
    assert "3 models" in current and "current params and code" in current
    assert "2 models" in other and "current" not in other
    size = sum(f.stat().st_size for f in (root / "data/memorize_store" / keys["other"]).iterdir())
    assert f"{size / 1000:.1f} kB" in other
    assert "2 keys, 5 models" in lines[-1] and lines[-1].endswith(f"current key: {keys['current']}")


def test_ls_follows_the_params_a_changed_recipe_is_a_key_not_yet_stored(project, capsys, tmp_path, synthetic):
    root, keys = project
    write_params(root, dataclasses.replace(RECIPE, epochs=2), CURRENT)
    try:
        _, out, _ = store(root, capsys, "ls")
    finally:
        write_params(root, RECIPE, CURRENT)
    train, test, _, _ = synthetic
    new_key = key_for(train, test, dataclasses.replace(RECIPE, epochs=2), CURRENT)
    assert new_key not in keys.values() and out.splitlines()[-1].endswith(f"current key: {new_key}")
    assert "current params and code" not in out


def test_verify_passes_a_sound_store_and_names_each_bad_file_without_deleting_it(project, capsys, tmp_path):
    root, keys = project
    code, out, err = store(root, capsys, "verify")
    assert code == 0 and out.strip().endswith("5 files checked, 0 bad") and not err

    folder = root / "data/memorize_store" / keys["other"]
    damaged, truncated, stray = folder / "model_00000.npz", folder / "model_00001.npz", folder / "notes.txt"
    originals = {p: p.read_bytes() for p in (damaged, truncated)}
    with np.load(damaged) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_true_prob"] = arrays["train_true_prob"] + 0.5  # same shape, other numbers: only the checksum tells
    np.savez(damaged, **arrays)
    truncated.write_bytes(originals[truncated][:100])
    stray.write_text("x")
    try:
        code, out, err = store(root, capsys, "verify")
        problems = err.splitlines()
        assert code == 1 and out.strip().endswith("6 files checked, 3 bad") and len(problems) == 3
        assert any(p.startswith(f"{damaged}: checksum mismatch") for p in problems)
        assert any(p.startswith(f"{truncated}: unreadable") for p in problems)
        assert any(p.startswith(f"{stray}: not a subset-model file") for p in problems)
        assert damaged.exists() and truncated.exists()  # verify reports; it never deletes
    finally:
        for path, raw in originals.items():
            path.write_bytes(raw)
        stray.unlink()


def test_gc_is_a_dry_run_unless_yes_and_keeps_the_current_key(tmp_path, project, capsys):
    import shutil

    source, keys = project
    root = tmp_path / "copy"
    shutil.copytree(source, root)
    code, out, _ = store(root, capsys, "gc")
    assert code == 0 and f"would remove {keys['other']} (2 models" in out and "--yes" in out
    assert (root / "data/memorize_store" / keys["other"]).is_dir()

    code, out, _ = store(root, capsys, "gc", "--yes")
    assert code == 0 and f"removed {keys['other']}" in out
    assert sorted(p.name for p in (root / "data/memorize_store").iterdir()) == [keys["current"]]
    assert len(list((root / "data/memorize_store" / keys["current"]).glob("model_*.npz"))) == 3

    _, out, _ = store(root, capsys, "gc", "--yes")
    assert "every key is in use" in out


def test_gc_removes_nothing_when_it_cannot_tell_the_current_key(tmp_path, project, capsys):
    import shutil

    source, keys = project
    root = tmp_path / "copy"
    shutil.copytree(source, root)
    (root / "data/prepared/train.npz").unlink()
    code, out, err = store(root, capsys, "gc", "--yes")
    assert code == 1 and "train.npz is missing; run `dvc repro prepare`" in err and "nothing removed" in err
    assert sorted(p.name for p in (root / "data/memorize_store").iterdir()) == sorted(keys.values())
