"""A lineage for a project without DVC (the tests' and ``benchmarks/requests.py``'s): prepared data, the original
trained with the ``train`` recipe, registered as the train stage registers it (D and T logged, tagged with its
architecture) and @production claimed. A DVC project gets the same from `dvc repro train`; ``score_exact`` writes
what `dvc repro memorize` writes, the exact scores the gates' reference reads."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .. import tracking
from ..config import from_params
from ..data import PrepareConfig, prepare, save_info, save_split
from ..data.owner_ids import save_owner_ids
from ..data.prepare import VALIDATION_FILE
from ..devices import resolve_device
from ..models import build_model
from ..seeding import generator
from ..training import TrainConfig, fit, save_checkpoint


def bootstrap(root: Path, params: Mapping[str, Any], target: tracking.TrackingTarget) -> float:
    """Write ``root``'s data/prepared and data/train/model.pt from ``params`` (its data and train sections) and
    register the original in ``target``; returns the original's training seconds."""
    import time

    data = prepare(from_params(PrepareConfig, params["data"], "data"), Path(root) / "data/raw")
    prepared = Path(root) / "data/prepared"
    save_split(data.train, prepared / "train.npz")
    save_split(data.test, prepared / "test.npz")
    if data.validation is not None:
        save_split(data.validation, prepared / VALIDATION_FILE)
    save_info(data.info, prepared / "meta.json")
    save_owner_ids(data.owner_ids, prepared)
    recipe = from_params(TrainConfig, params["train"], "train")
    model = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size, recipe.seed)
    start = time.perf_counter()
    fit(model, data.train, data.info, recipe, generator(recipe.seed, "train_order"), resolve_device(recipe.device))
    seconds = time.perf_counter() - start
    save_checkpoint(model, recipe.model, data.info, Path(root) / "data/train/model.pt")
    tracking.record_stage(tracking.StageRecord(
        "train", models={"original_model": tracking.ModelRecord(model, "original", data.info, {"model": recipe.model})},
        datasets={"D": data.train, "T": data.test}), target)
    tracking.claim_alias(target, "original")
    return seconds


def score_exact(root: Path, params: Mapping[str, Any]) -> float:
    """``root``'s data/memorize/scores.parquet as the memorize stage computes it (its K subset models, here in this
    process, no store) from ``root``'s prepared data; returns the seconds."""
    import time

    from ..data import load_info, load_split
    from ..io import save_table
    from ..memorization import ExactConfig, memorization_scores, train_subset_models
    from ..training.recipe import recipe_for, resolved

    prepared = Path(root) / "data/prepared"
    train, test = load_split(prepared / "train.npz"), load_split(prepared / "test.npz")
    config = from_params(ExactConfig, params["memorize"], "memorize")
    device = resolve_device(params["train"].get("device", "auto"))
    recipe = resolved(recipe_for(params, "subset"), device)
    start = time.perf_counter()
    runs = train_subset_models(train, test, load_info(prepared / "meta.json"), recipe, config, device).runs
    save_table(memorization_scores(runs, train.example_ids.numpy()), Path(root) / "data/memorize/scores.parquet")
    return time.perf_counter() - start
