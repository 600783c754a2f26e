"""Datasets read from files (data/files.py ``image_folder``, data/corpus.py ``text_jsonl``), the owner's ids
(data/owner_ids.py) and the data source's fingerprint (sources.py): real PNG and JSONL files written here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from memunlearn.config import ConfigError, from_params
from memunlearn.data import PrepareConfig, prepare
from memunlearn.data.owner_ids import OWNER_IDS_FILE, load_owner_ids, owner_table, with_owner_ids
from memunlearn.data.text_prepare import prepare_text
from memunlearn.sources import data_fingerprint
from memunlearn.memorization.proxies import score_columns

CLASSES = ("ant", "bee", "cow")


def write_images(root: Path, per_class: int = 10, size: int = 8, rgb: bool = False, seed: int = 0) -> Path:
    """``per_class`` random ``size``x``size`` PNGs per class folder; pixel (0, 0) holds the class index * 80."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3) if rgb else (size, size), dtype=np.uint8)
            pixels[0, 0] = label * 80
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def config(**data) -> PrepareConfig:
    return from_params(PrepareConfig, data, "data")


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---- image_folder -----------------------------------------------------------------------------------------------

def test_image_folder_holds_out_a_stratified_test_set_and_names_examples_by_path(tmp_path):
    root = write_images(tmp_path / "imgs")
    data = prepare(config(dataset="image_folder", path=str(root), test_fraction=0.2), tmp_path)
    assert data.train.images.shape == (24, 1, 8, 8) and len(data.test) == 6  # grayscale stays one channel
    assert np.bincount(data.test.labels.numpy()).tolist() == [2, 2, 2]  # stratified
    assert data.info.num_classes == 3 and data.info.image_size == 8
    owners = dict(zip(data.owner_ids["example_id"], data.owner_ids["owner_id"]))
    assert len(owners) == 30 and owners[0] == "ant/00.png" and owners[29] == "cow/09.png"  # sorted path order
    for split in (data.train, data.test):  # every row is the file its owner id names
        for image, label, example in zip(split.images, split.labels, split.example_ids.tolist()):
            assert owners[example].split("/")[0] == CLASSES[int(label)] and int(image[0, 0, 0]) == int(label) * 80


def test_image_folder_classes_are_named_by_their_folders_wherever_names_are_shown(tmp_path):
    """meta.json keeps the folder names (a built-in dataset's keeps no names: its file is as before), and the
    figures, ``memunlearn top`` and the model metadata read them through labels.py ``class_names``."""
    from memunlearn.data import load_info, save_info
    from memunlearn.data.splits import DatasetInfo
    from memunlearn.labels import class_names
    from memunlearn.tracking import model_metadata

    data = prepare(config(dataset="image_folder", path=str(write_images(tmp_path / "imgs"))), tmp_path)
    save_info(data.info, tmp_path / "meta.json")
    info = load_info(tmp_path / "meta.json")
    assert info.class_names == CLASSES and class_names(info) == list(CLASSES)
    assert model_metadata(info, {})["class_names"] == list(CLASSES)
    built_in = DatasetInfo("mnist_embedded", 10, 1, 28, (0.1,), (0.3,))
    assert "class_names" not in built_in.to_json() and class_names(built_in)[3] == "3"
    assert class_names(DatasetInfo("cifar10_synthetic", 2, 3, 32, (0.5,) * 3, (0.2,) * 3)) == ["class 0", "class 1"]


def test_an_official_split_rgb_images_and_ids_csv(tmp_path):
    root = tmp_path / "imgs"
    write_images(root / "train", per_class=4, rgb=True)
    write_images(root / "test", per_class=2, seed=1)  # grayscale test images: converted to RGB like the rest
    rows = [f"{split}/{c}/{i:02d}.png,{c}-{split}-{i}" for split, n in (("train", 4), ("test", 2))
            for c in CLASSES for i in range(n)]
    (root / "ids.csv").write_text("path,id\n" + "\n".join(rows) + "\n")
    data = prepare(config(dataset="image_folder", path=str(root), image_size=4), tmp_path)
    assert data.train.images.shape == (12, 3, 4, 4) and data.test.images.shape == (6, 3, 4, 4)  # resized
    assert data.train.example_ids.tolist() == list(range(12)) and data.test.example_ids.tolist() == list(range(12, 18))
    owners = dict(zip(data.owner_ids["example_id"], data.owner_ids["owner_id"]))
    assert owners[0] == "ant-train-0" and owners[12] == "ant-test-0" and owners[17] == "cow-test-1"


@pytest.mark.parametrize("breakage, says", [
    ("unreadable", "bee/03.png: not a readable image"),
    ("mixed_sizes", "cow/05.png: 9x9 pixels, but"),
    ("empty_class", "dog: empty class folder"),
    ("test_only_class", "test/eel: a class folder the training folder"),
    ("duplicate_id", "ids.csv line 3: duplicate id 'same' (also line 2)"),
    ("path_not_there", "ids.csv line 32: 'ant/99.png' is not an image under"),
    ("file_not_listed", "cow/09.png: not in"),
])
def test_every_bad_file_is_one_line_naming_it(tmp_path, breakage, says):
    root = write_images(tmp_path / "imgs")
    rows = [f"{c}/{i:02d}.png,{c}{i}" for c in CLASSES for i in range(10)]
    if breakage == "unreadable":
        (root / "bee/03.png").write_bytes(b"not a png")
    elif breakage == "mixed_sizes":
        Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "cow/05.png")
    elif breakage == "empty_class":
        (root / "dog").mkdir()
    elif breakage == "test_only_class":
        root = write_images(tmp_path / "split" / "train", per_class=2).parent
        write_images(root / "test", per_class=1)
        (root / "test/eel").mkdir()
    elif breakage == "duplicate_id":
        (root / "ids.csv").write_text("path,id\nant/00.png,same\nant/01.png,same\n")
    elif breakage == "path_not_there":
        (root / "ids.csv").write_text("path,id\n" + "\n".join(rows + ["ant/99.png,gone"]) + "\n")
    elif breakage == "file_not_listed":
        (root / "ids.csv").write_text("path,id\n" + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(ConfigError) as error:
        prepare(config(dataset="image_folder", path=str(root)), tmp_path)
    assert says in one_line(error)
    if breakage == "mixed_sizes":
        assert "set data.image_size" in str(error.value)


def test_data_path_is_named_when_empty_missing_or_set_on_a_built_in_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.path: empty; set it"):
        config(dataset="image_folder")
    with pytest.raises(ConfigError, match=r"^data.path: .*nowhere does not exist"):
        config(dataset="text_jsonl", path=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"^data.path: dataset 'mnist_embedded' is built in"):
        config(dataset="mnist_embedded", path=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^data.image_size: does not apply to dataset 'mnist_embedded'"):
        config(image_size=28)


# ---- text_jsonl -------------------------------------------------------------------------------------------------

def write_jsonl(path: Path, n: int = 40) -> Path:
    lines = [json.dumps({"id": f"doc-{i}", "text": "word " * (1 + i % 5) + f"number {i}"}) for i in range(n)]
    lines.insert(5, "")  # a blank line is skipped
    lines.append(json.dumps({"id": 7, "text": "an integer id " * 40}))  # kept as "7"; longer than seq_len: cut
    path.write_text("\n".join(lines) + "\n")
    return path


def text_config(path: Path, **text):
    return config(dataset="text_jsonl", path=str(path), validation_fraction=0.1, test_fraction=0.1,
                  text={"seq_len": 24, "canary_copies": [1, 2], "canaries_per_count": 1, **text}).text_config()


def test_text_jsonl_is_one_example_per_record_padded_and_cut(tmp_path):
    prepared = prepare_text(text_config(write_jsonl(tmp_path / "docs.jsonl")))
    pad, eos = prepared.info.pad_id, prepared.info.eos_id
    owners = dict(zip(prepared.owner_ids["example_id"], prepared.owner_ids["owner_id"]))
    assert len(prepared.train) + len(prepared.validation) + len(prepared.test) == 41 + 3  # records + canary copies
    assert (len(prepared.validation), len(prepared.test)) == (4, 4)
    assert owners[0] == "doc-0" and owners[40] == "7"
    assert [owners[i] for i in range(41, 44)] == ["canary-0-0", "canary-1-0", "canary-1-1"]
    assert prepared.n_cut == 1  # the long record
    every = prepared.train.concat(prepared.validation).concat(prepared.test)
    rows = {int(e): every.tokens[k] for k, e in enumerate(every.example_ids)}
    short = rows[0]
    ends = int((short != pad).sum())
    assert short[ends - 1] == eos and (short[ends:] == pad).all() and ends < 24  # tokens + EOS, then PAD
    assert (rows[40] != pad).all()  # the cut record fills the sequence


def test_text_jsonl_split_is_seeded(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl")
    first, again = prepare_text(text_config(path)), prepare_text(text_config(path))
    other = prepare_text(config(dataset="text_jsonl", path=str(path), validation_fraction=0.1, test_fraction=0.1,
                                split_seed=1, text={"seq_len": 24, "canary_copies": [1, 2],
                                                    "canaries_per_count": 1}).text_config())
    assert first.test.example_ids.tolist() == again.test.example_ids.tolist() != other.test.example_ids.tolist()


@pytest.mark.parametrize("lines, says", [
    (['{"id": "a", "text": "x"}', "{oops"], "line 2: not JSON"),
    (['{"id": "a"}'], "line 1: needs the keys id and text"),
    (['{"id": "a", "text": "x"}', '{"id": "a", "text": "y"}'], "line 2: duplicate id 'a' (also line 1)"),
    (['{"id": "a", "text": ""}'], "line 1: text '' is not a non-empty string"),
    (['{"id": null, "text": "x"}'], "line 1: id None is not"),
    ([], ": empty; write one"),
])
def test_a_bad_jsonl_line_is_one_error_naming_file_and_line(tmp_path, lines, says):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(ConfigError) as error:
        prepare_text(text_config(path))
    assert says in one_line(error) and str(path) in str(error.value)


# ---- owner ids in outputs; the fingerprint ----------------------------------------------------------------------

def test_outputs_carry_the_owner_id_beside_the_example_id_and_it_is_no_score(tmp_path):
    from memunlearn.modality.image.pipeline import ImageModality

    root = write_images(tmp_path / "imgs")
    ImageModality().prepare(config(dataset="image_folder", path=str(root)), tmp_path, tmp_path / "prepared")
    owners = load_owner_ids(tmp_path / "prepared")
    assert (tmp_path / "prepared" / OWNER_IDS_FILE).exists() and owners[0] == "ant/00.png"
    table = pd.DataFrame({"example_id": [3, 0], "conf": [0.5, 0.1], "conf__raw": [1.0, 2.0]})
    out = with_owner_ids(table, owners)
    assert list(out.columns) == ["example_id", "owner_id", "conf", "conf__raw"]
    assert out["owner_id"].tolist() == ["ant/03.png", "ant/00.png"] and score_columns(out) == ["conf"]


def test_built_in_owner_ids_are_the_example_ids_as_strings(tmp_path):
    from memunlearn.modality.image.pipeline import ImageModality

    ImageModality().prepare(config(max_train=50, max_test=20), tmp_path, tmp_path / "prepared")
    owners = load_owner_ids(tmp_path / "prepared")
    assert len(owners) == 70 and all(owners[i] == str(i) for i in owners.index)
    with pytest.raises(FileNotFoundError, match="run `dvc repro prepare`"):
        load_owner_ids(tmp_path)
    assert owner_table([2, 1], ["b", "a"])["owner_id"].tolist() == ["a", "b"]


def test_the_fingerprint_changes_with_any_file_and_only_then(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=2)
    first = data_fingerprint("image_folder", "imgs", tmp_path)
    assert first["files"] == 6 and first["path"] == "imgs" and first["bytes"] > 0
    assert data_fingerprint("image_folder", "imgs", tmp_path) == first  # nothing changed
    (root / "ant/00.png").rename(root / "ant/zz.png")
    renamed = data_fingerprint("image_folder", "imgs", tmp_path)
    assert renamed["sha256"] != first["sha256"] and renamed["bytes"] == first["bytes"]
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "ant/zz.png")
    assert data_fingerprint("image_folder", "imgs", tmp_path)["sha256"] not in (first["sha256"], renamed["sha256"])
    assert data_fingerprint("mnist_embedded", "") == {"dataset": "mnist_embedded"}
    with pytest.raises(FileNotFoundError, match="^data.path: .*gone does not exist"):
        data_fingerprint("image_folder", "gone", tmp_path)


def test_check_names_a_missing_data_path_and_a_modality_the_dataset_disagrees_with(tmp_path, capsys):
    import yaml

    from memunlearn.cli import main

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["data"].update(dataset="image_folder", path=str(tmp_path / "nowhere"))
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(bad)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.splitlines()[0].startswith("data.path: ") and "does not exist" in err
    jsonl = write_jsonl(tmp_path / "docs.jsonl")
    params["data"].update(dataset="text_jsonl", path=str(jsonl))  # modality: image, a text corpus
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(bad)])
    assert exit_.value.code == 1 and "modality: 'image'" in capsys.readouterr().err
