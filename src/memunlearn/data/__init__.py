"""Datasets (embedded default + torchvision), ids, splits and label noise."""
from .datasets import DATASETS, RawDataset
from .noise import flip_labels
from .prepare import PrepareConfig, PreparedData, prepare
from .splits import DatasetInfo, ImageSplit, load_info, load_split, normalize, save_info, save_split

__all__ = [
    "DATASETS", "RawDataset", "flip_labels", "PrepareConfig", "PreparedData", "prepare",
    "DatasetInfo", "ImageSplit", "load_info", "load_split", "normalize", "save_info", "save_split",
]
