"""Human-readable class names of the registered datasets, for figures, ``memunlearn top`` and model metadata.

Kept out of ``data/`` on purpose: no stage computes a result from a name, so
editing one reruns nothing but the figures (docs/architecture.md rule 7). A
dataset read from files names its own classes (``DatasetInfo.class_names``).
"""
from __future__ import annotations

DIGITS = tuple(str(d) for d in range(10))
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist_embedded": DIGITS,
    "mnist": DIGITS,
    "svhn": DIGITS,
    "fashion_mnist": ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "cifar100": (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
        "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee",
        "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant",
        "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
        "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
        "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate",
        "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark",
        "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
        "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
        "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"),
}


def class_names(info) -> list[str]:
    """The class names by label of the data ``info`` (data/splits.py ``DatasetInfo``) describes: its own (an
    ``image_folder``'s folder names), else its registered dataset's, else ``class <i>``."""
    names = info.class_names or CLASS_NAMES.get(info.name, ())
    return list(names) if len(names) == info.num_classes else [f"class {i}" for i in range(info.num_classes)]
