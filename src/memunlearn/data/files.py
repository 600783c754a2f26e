"""Image datasets read from files: ``data.dataset: image_folder`` with ``data.path`` (registry in base.py).

The layout is torchvision's ``ImageFolder``: ``<path>/<class>/<file>``, one folder per class (sorted names ->
labels 0, 1, ...; the folder names are the class names figures and ``memunlearn top`` show). If ``<path>/train/`` and ``<path>/test/`` exist they are the official split; else a stratified
``data.test_fraction`` is held out (seeded by ``data.split_seed``, as ``mnist_embedded`` does). Images are read with
PIL: all-grayscale data stays one channel, anything else becomes RGB; ``data.image_size`` > 0 resizes every image
to that square size, 0 keeps them (then all must be the same square size). Example ids number the files in sorted
path order (train first, test after); the owner's id of a file is its path relative to ``data.path``, or its
``id`` in an optional ``<path>/ids.csv`` (columns ``path,id``). Every bad file is one line naming it and the fix.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from ..io import existing_data_path
from .base import DATASETS, RawDataset
from .owner_ids import owner_table
from .splits import ImageSplit

IDS_FILE = "ids.csv"  # optional, in data.path: path (relative to data.path), id (the owner's)
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes read as one channel


def check_path(path: str) -> Path:
    """``data.path`` as an existing, non-empty folder, or a one-line error naming the key."""
    if not path:
        raise ConfigError("data.path: empty; set it to the folder (image_folder) or file (text_jsonl) of your data")
    try:
        return existing_data_path(Path(path))
    except FileNotFoundError as exc:  # a params problem here (memunlearn check collects ConfigErrors)
        raise ConfigError(str(exc)) from None


@DATASETS.register("image_folder")
def image_folder(raw_dir: Path, split_seed: int, test_fraction: float, path: str = "", image_size: int = 0
                 ) -> RawDataset:
    """A folder of class folders of images (module docstring); ``raw_dir`` is unused (nothing is downloaded)."""
    root = check_path(path)
    if not root.is_dir():
        raise ConfigError(f"data.path: {root} is a file; image_folder reads a folder of class folders "
                          f"(<path>/<class>/<file>)")
    official = (root / "train").is_dir() and (root / "test").is_dir()
    parts = [root / "train", root / "test"] if official else [root]
    classes = _classes(parts[0])
    for part in parts[1:]:
        if extra := sorted(set(_classes(part)) - set(classes)):
            raise ConfigError(f"{part / extra[0]}: a class folder the training folder {parts[0]} lacks; add it "
                              f"there or remove it")
    files = [_files(part, classes) for part in parts]  # per part: [(file, label)] in sorted path order
    every = [entry for listed in files for entry in listed]
    images = _read_images([f for f, _ in every], image_size)  # (N, C, H, W) uint8
    labels = np.asarray([label for _, label in every], dtype=np.int64)
    owners = _owner_ids(root, [f for f, _ in every])
    n_train = len(files[0])
    if official:
        train_rows, test_rows = np.arange(n_train), np.arange(n_train, len(every))
    else:
        train_rows, test_rows = _holdout(labels, test_fraction, split_seed, root)

    def split(rows: np.ndarray) -> ImageSplit:
        return ImageSplit(torch.from_numpy(images[rows]), torch.from_numpy(labels[rows]), torch.from_numpy(rows))

    return RawDataset(split(train_rows), split(test_rows), len(classes), owner_table(np.arange(len(every)), owners),
                      tuple(classes))


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(f"{folder}: no class folders; image_folder reads <path>/<class>/<file> (or <path>/train/"
                          f"<class>/<file> and <path>/test/<class>/<file>)")
    return classes


def _files(part: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """Every file of ``part``'s class folders with its label, sorted by path; an empty class folder is an error."""
    found = []
    for label, name in enumerate(classes):
        folder = part / name
        if not folder.is_dir():
            continue  # a test folder may lack a class
        listed = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not listed:
            raise ConfigError(f"{folder}: empty class folder; put its images there or remove the folder")
        found += [(p, label) for p in listed]
    return found


def _read_images(files: list[Path], image_size: int) -> np.ndarray:
    """(N, C, H, W) uint8: C = 1 when every image is grayscale, else 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    opened = []
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                opened.append(image.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ConfigError(f"{file}: not a readable image ({type(exc).__name__}); replace it with a valid "
                              f"PNG/JPEG or remove it") from None
    mode = "L" if all(image.mode in GRAYSCALE_MODES for image in opened) else "RGB"
    first = opened[0].size if opened else None
    arrays = []
    for file, image in zip(files, opened):
        if image.mode in ("I", "I;16", "F"):
            image = _to_8bit(image)
        if image.mode != mode:
            image = image.convert(mode)
        if image_size:
            image = image.resize((image_size, image_size), Image.BILINEAR)
        elif image.size != first or image.size[0] != image.size[1]:
            raise ConfigError(f"{file}: {image.size[0]}x{image.size[1]} pixels, but {files[0]} is "
                              f"{first[0]}x{first[1]} (images must be one square size); set data.image_size "
                              f"(e.g. {max(first)}) to resize them all")
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))  # (C, H, W)
    return np.ascontiguousarray(np.stack(arrays))


def _to_8bit(image):
    """A 16-bit or float grayscale image scaled into 0..255 (mode L)."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    top = values.max() or 1.0
    return Image.fromarray(np.clip(values / top * 255, 0, 255).astype(np.uint8), mode="L")


def _owner_ids(root: Path, files: list[Path]) -> list[str]:
    """Each file's owner id: its ``ids.csv`` id, else its path relative to ``root`` (POSIX separators)."""
    relative = [f.relative_to(root).as_posix() for f in files]
    ids_file = root / IDS_FILE
    if not ids_file.exists():
        return relative
    with open(ids_file, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "id"} <= set(reader.fieldnames):
            raise ConfigError(f"{ids_file}: needs the columns path,id (a file's path relative to data.path, its id)")
        rows = [(line, row["path"].strip(), row["id"].strip()) for line, row in enumerate(reader, 2)]
    by_path, seen = {}, {}
    for line, path, owner in rows:
        if path in by_path:
            raise ConfigError(f"{ids_file} line {line}: path {path!r} is listed twice; keep one line per file")
        if owner in seen:
            raise ConfigError(f"{ids_file} line {line}: duplicate id {owner!r} (also line {seen[owner]}); give "
                              f"every file its own id")
        if not owner:
            raise ConfigError(f"{ids_file} line {line}: empty id for {path!r}; give every file an id")
        by_path[path], seen[owner] = owner, line
    present = set(relative)
    for line, path, _ in rows:
        if path not in present:
            raise ConfigError(f"{ids_file} line {line}: {path!r} is not an image under {root}; fix the path or "
                              f"remove the line")
    for path in relative:
        if path not in by_path:
            raise ConfigError(f"{root / path}: not in {ids_file}; add a line `{path},<id>` or remove the file")
    return [by_path[path] for path in relative]


def _holdout(labels: np.ndarray, test_fraction: float, seed: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, test rows), each sorted, as ``mnist_embedded`` splits."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    try:
        train_rows, test_rows = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise ConfigError(f"{root}: cannot hold out data.test_fraction {test_fraction} per class ({exc}); add "
                          f"images, change data.test_fraction, or give a train/ and test/ folder") from None
    return np.sort(train_rows), np.sort(test_rows)
