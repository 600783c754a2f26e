"""Datasets (embedded default, torchvision, files; registry in base.py), ids and owner ids, splits and label noise."""
from .base import DATASETS, MODALITY_DATASETS, TEXT_CORPORA, ExampleSplit, RawDataset, data_modality
from . import corpus, datasets, files  # noqa: F401  (the loaders and corpora; importing registers them)
from .noise import flip_labels
from .prepare import VALIDATION_FILE, PrepareConfig, PreparedData, load_validation, prepare
from .splits import DatasetInfo, ImageSplit, load_info, load_split, normalize, save_info, save_split

__all__ = [
    "DATASETS", "MODALITY_DATASETS", "TEXT_CORPORA", "data_modality", "ExampleSplit", "RawDataset", "flip_labels", "PrepareConfig", "PreparedData", "prepare", "load_validation",
    "VALIDATION_FILE",
    "DatasetInfo", "ImageSplit", "load_info", "load_split", "normalize", "save_info", "save_split",
]
