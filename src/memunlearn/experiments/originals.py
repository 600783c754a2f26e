"""Each grid seed's own original model and memorization scores (a grid's ``originals: per_seed``; grid.py).

With ``originals: shared`` every seed of a grid unlearns the train stage's original and draws its forget sets
from the memorize and proxies stages' scores: an interval over seeds then covers the oracle, the unlearning, the
tie-breaks and the MIA subsample only (evaluation/claims.py ``COVERS``). With ``per_seed`` grid seed s has its own
original, trained with the train recipe and records at seed ``train.seed + s``, its own exact scores from K
subset models of the same data at memorize seed ``memorize.seed + s``, and the proxies the grid names computed
from that original's records: its forget sets, their RUM refinement and the proxies' scores all come from it.

Seed 0 is the pipeline's own original (the same recipe and seeds): it is read from the train, memorize and proxies
stages' outputs. Every other seed is trained once and cached by content (model_cache.py, kind ``seed_original``:
keyed by the data, the recipes, the records, the memorize and proxies settings, the seeds and the code), so a
rerun trains nothing; its subset models live in a store beside it (memorization/store.py), so a larger K trains
only the new ones.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from ..data.splits import dataset_fingerprint
from ..io import load_table, save_json, save_table
from ..memorization.proxies import compute_proxies
from ..models import architecture_files
from ..partition import EMBEDDING_SCORES, EXACT_SCORES
from ..provenance import PACKAGE_ROOT, imported_files
from ..training.model_cache import cached_model
from ..training.recipe import recipe_identity, resolved

SCORE_FILES = ("scores.parquet", "proxies.parquet")  # a seed original's exact scores and proxies, in its folder
SUBSET_STORE = "subset_models"  # under the cache: every seed original's subset models (memorization/store.py)


@dataclasses.dataclass(frozen=True)
class StageOutputs:
    """Where the pipeline's own original (grid seed 0) and its scores are: the train, memorize, proxies stages'."""

    train: Path  # the train stage's folder: model.pt and its records
    exact: Path  # data/memorize/scores.parquet
    proxies: Path  # data/proxies/proxies.parquet


def needed_proxies(scores: set[str]) -> tuple[str, ...]:
    """The proxies among the score names a grid reads (its group_scores, fixed_group_score, refine_score)."""
    return tuple(sorted(s for s in scores if s and s not in EXACT_SCORES and s not in EMBEDDING_SCORES))


def seed_original(modality, data, seed: int, recipe, records, subset_recipe, memorize, proxies, stage: StageOutputs,
                  cache: Path | None, execution: Any, device) -> tuple[Path, dict[str, Any]]:
    """The folder holding grid seed ``seed``'s original (model.pt, its training records) and its scores
    (SCORE_FILES), and facts about it (``original_seconds``, ``original_cached``). ``recipe``, ``records``,
    ``subset_recipe``, ``memorize``, ``proxies``: the pipeline's (TrainConfig, RecordConfig, the subset models'
    TrainConfig, ExactConfig, ProxyConfig with the names to compute); the seeds are offset by ``seed`` here."""
    if seed == 0:
        return stage.train, {"original_seconds": 0.0, "original_cached": True}
    own = dataclasses.replace(recipe, seed=recipe.seed + seed)
    exact = dataclasses.replace(memorize, seed=memorize.seed + seed)
    scored = dataclasses.replace(proxies, seed=proxies.seed + seed)
    identity = {"data": [dataset_fingerprint(split) for split in (data.train, data.validation, data.test)
                         if split is not None],
                "recipe": recipe_identity(resolved(own, device)), "records": dataclasses.asdict(records),
                "subset_recipe": recipe_identity(resolved(subset_recipe, device)),
                "memorize": dataclasses.asdict(exact), "proxies": dataclasses.asdict(scored)}
    code = imported_files(Path(__file__), PACKAGE_ROOT / "modality" / modality.name / "pipeline.py",
                          *architecture_files([own.model]))
    staging = (Path(cache) if cache is not None else Path(".")) / f"staging-seed_original-{seed}"

    def train() -> Path:
        from ..modality import SubsetModels  # the store's execution settings, local: no runner to import

        shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left
        model, _, _, _ = modality.train_original(data, own, records, device, staging, None)
        modality.save_model(model, own.model, data.info, staging / "model.pt")
        store = SubsetModels(Path(cache or staging) / SUBSET_STORE, None, execution, None, lambda key, ks: None)
        table, metrics, _ = modality.memorize(data, subset_recipe, exact, device, staging / "memorize",
                                              staging / "plots", store)
        save_table(table, staging / SCORE_FILES[0])
        save_json(metrics, staging / "memorize.json")
        if scored.names:  # only the proxies a grid reads: [] would compute every one
            names, inputs = modality.proxy_inputs(data, scored, staging, device)
            table, _ = compute_proxies(names, inputs)
        else:
            table = table[["example_id"]]
        save_table(table, staging / SCORE_FILES[1])
        return staging

    entry: dict[str, Path] = {}  # the cache's folder of a fresh entry (cached_model returns what train returned)

    def save(staged: Path, target: Path) -> None:
        shutil.copytree(staged, target, dirs_exist_ok=True)
        shutil.rmtree(staged, ignore_errors=True)
        entry["folder"] = target

    folder, record, cached = cached_model(cache, "seed_original", {**identity, "seed": seed}, code, train, save,
                                          lambda folder: folder)
    return entry.get("folder", folder), {"original_seconds": float(record["seconds"]), "original_cached": cached}


def score_tables(folder: Path, stage: StageOutputs) -> tuple[Any, Any]:
    """(exact scores, proxies) of the original in ``folder``: the stages' tables for the pipeline's own."""
    if folder == stage.train:
        return load_table(stage.exact, "memorize"), load_table(stage.proxies, "proxies")
    return tuple(load_table(folder / name, "grids") for name in SCORE_FILES)


def per_seed_sources(modality, data, make_original: Callable[[int], tuple[Path, Mapping[str, Any]]],
                     stage: StageOutputs, recipe, device):
    """seed -> (GridOriginal, ScoreSources) from each seed's own original (``make_original``: ``seed_original``
    with everything but the seed bound), each built once."""
    from ..modality.base import GridOriginal

    built: dict[int, tuple[Any, Any]] = {}

    def of(seed: int):
        if seed not in built:
            folder, facts = make_original(seed)
            model = modality.load_model(folder / "model.pt", "train")[0]
            context = modality.unlearn_context(data, recipe, device, 0, folder)  # a cell's seed replaces the 0
            sources = modality.score_sources(data, *score_tables(folder, stage), folder / "model.pt", device)
            built[seed] = GridOriginal(model, context, dict(facts)), sources
        return built[seed]

    return of
