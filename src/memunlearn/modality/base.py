"""The modality registry ``MODALITIES``: what makes the one pipeline run on images or on text.

A modality is the kind of data ``data.dataset`` names (data/base.py
``data_modality``: an image dataset or a text corpus) and of model
``train.model`` names (models/base.py ``model_modality``); the ``modality``
param names it for the stages. Two things per modality:

- its rules, ``ModalityRules`` in ``MODALITIES`` (applies.py): which
  registered unlearning methods, proxies and forget-set kinds apply to it,
  which params keys do not (``problems``: one line each, naming the key and
  the fix, reported by ``memunlearn check``);
- its behaviour, the ``Modality`` protocol: what a stage asks of the data
  and models it runs on (load the prepared data, train, save and load a
  model, the unlearning context, the partition's score sources, how MLflow
  sees a split and a model). ``load_modality`` imports
  ``modality/<name>/pipeline.py`` by name, so a stage script imports
  neither modality and its DVC deps name the folder of the one it runs
  (``src/memunlearn/modality/${modality}`` in dvc.yaml).
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from ..registry import Registry, UnknownNameError

IMAGE = "image"
DATA_WORDS = {"image": "an image dataset", "text": "a text corpus"}
MODALITY_KEY = "modality"  # in data/prepared/meta.json; absent = image (image meta.json files predate it)


@dataclass(frozen=True)
class ModalityRules:
    """What applies to a modality (applies.py registers one per modality)."""

    name: str
    summary: str
    methods: tuple[str, ...] | None = None  # registered unlearning methods that apply; None = every one
    proxies: tuple[str, ...] | None = None  # registered proxies that apply; None = every one
    kinds: tuple[str, ...] | None = None  # forget-set kinds that apply; None = every one but other modalities'
    scores: tuple[str, ...] | None = None  # group/refine scores beside the proxies; None = every one
    only_kinds: tuple[str, ...] = ()  # kinds that apply to this modality alone
    problems: Callable[[Mapping[str, Any]], list[str]] = lambda params: []  # keys that do not apply


MODALITIES: Registry[ModalityRules] = Registry("modality")


def used_method_blocks(params: Mapping[str, Any], method: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, block) of each ``methods`` block of registered ``method`` that the run uses (config.py
    ``used_methods``), and ``method``'s own block."""
    from ..config import used_methods

    blocks = params.get("methods")
    for name in sorted({method, *(name for _, name in used_methods(params))}):
        block = blocks.get(name) if isinstance(blocks, Mapping) else None
        if isinstance(block, Mapping) and block.get("method", name) == method:
            yield name, block


def prepared_modality(prepared: Path) -> str:
    """The modality the prepare stage wrote into ``prepared/meta.json`` (image when it names none)."""
    meta = Path(prepared) / "meta.json"
    if not meta.exists():
        return IMAGE
    return json.loads(meta.read_text()).get(MODALITY_KEY, IMAGE)


@dataclass(frozen=True)
class SubsetModels:
    """Where the memorize stage's subset models live and train (an image run's persistent store; a text run
    trains its K models each run)."""

    root: Path  # the store (data/memorize_store)
    timings: Path | None  # each stored model's seconds, outside the store (memorization/store.py)
    execution: Any  # memorization/exact.py Execution: MEMUNLEARN_RUNNER, MEMUNLEARN_WORKERS
    runner: Any  # None (local), or memorization/runners.py prefect_runner's
    restore: Callable[[str, range], Any]  # (store key, model indices) -> copies models back from DVC's cache


# A loaded original's metrics for what training would have recorded (``Modality.load_original``): nothing, in no
# time. The proxies stage reads these costs; proxies that need the records are skipped (memorization/proxies).
NO_RECORDS = {"learning_event_seconds": 0.0, "curvature_seconds": 0.0, "curvature_rademacher_seconds": 0.0,
              "first_epoch_grad_seconds": 0.0, "examples_processed": 0}


@dataclass(frozen=True)
class GridOriginal:
    """The model a grid's cells of one seed unlearn (``Modality.grid_originals``) and what they read of it."""

    model: Any
    context: Any  # the UnlearnContext its cells unlearn with (each cell's seed replaces its seed)
    facts: Mapping[str, Any] = field(default_factory=dict)  # what the modality's forget_set_facts/cell_facts read


class Prepared(Protocol):
    """A run's prepared data (data/prepared/), as the stages read it."""

    train: Any  # an ExampleSplit: ImageSplit or TextSplit
    validation: Any  # the same kind, None without a validation split
    test: Any
    info: Any  # DatasetInfo or TextInfo

    @property
    def planted(self) -> Any:
        """Example ids of the planted examples (image: flipped labels; text: canary copies)."""

    def labels(self) -> Any:
        """Each training example's label by example_id (image: its class; text: its canary copy count)."""


class Modality(Protocol):
    """What the stages ask of a modality (one implementation each: modality/<name>/pipeline.py ``MODALITY``)."""

    name: str

    def prepare(self, config: Any, raw: Path, out: Path) -> tuple[dict[str, Any], list[Path]]:
        """Write the prepared data into ``out``; (the prepare stage's metrics, files to log)."""

    def load(self, prepared: Path) -> Prepared: ...

    def train_original(self, data: Prepared, recipe: Any, records: Any, device: Any, out: Path,
                       on_row: Callable | None) -> tuple[Any, dict[str, Any], list[dict], list[Path]]:
        """Train the original model, writing its training records into ``out``; (model, metrics, history,
        files to log)."""

    def load_original(self, data: Prepared, recipe: Any, device: Any, root: Path,
                      registry_weights: Callable[[str], Any]) -> tuple[Any, dict[str, Any]]:
        """The original trained elsewhere, ``recipe.init`` (a path under ``root`` or a ``models:/`` URI whose
        weights ``registry_weights`` reads): (model, metrics: ``init``, its accuracy, ``NO_RECORDS``)."""

    def save_model(self, model: Any, name: str, info: Any, path: Path) -> None: ...

    def load_model(self, path: Path, stage: str) -> tuple[Any, str]:
        """(model, its registered model name) of a checkpoint ``stage`` wrote."""

    def cached_oracle(self, retain: Any, info: Any, recipe: Any, device: Any, seed: int, cache: Path | None,
                      on_row: Callable | None = None) -> tuple[Any, float, bool]:
        """The retrain oracle on ``retain``, or its model from ``cache``: (model, training seconds, cached)."""

    def unlearn_context(self, data: Prepared, recipe: Any, device: Any, seed: int, train_dir: Path) -> Any:
        """The UnlearnContext methods get (first-epoch gradients when recorded, the validation split)."""

    def score_sources(self, data: Prepared, exact: Any, proxies: Any, original: Path, device: Any) -> Any:
        """The partition's ScoreSources (``original``: the trained model's checkpoint, for embeddings)."""

    def describe_forget_set(self, config: Any, forget: Any, sources: Any, data: Prepared) -> dict[str, Any]:
        """metrics/partition.json: what the forget set is made of."""

    def memorize(self, data: Prepared, recipe: Any, config: Any, device: Any, out: Path, plots: Path,
                  subset_models: SubsetModels) -> tuple[Any, dict[str, Any], list[Path]]:
        """Exact memorization scores of the training examples: (the scores table, metrics/memorize.json, files to
        log); writes its other tables into ``out`` and its plots into ``plots``."""

    def proxy_inputs(self, data: Prepared, config: Any, train_dir: Path, device: Any) -> tuple[list[str], Any]:
        """(the proxies to compute: ``proxies.names`` or every one that applies, their ProxyInputs)."""

    def model_metrics(self, model: Any, data: Prepared, parts: Any, config: Any, device: Any) -> dict[str, Any]:
        """One model's row of the evaluation (forget/retain/test accuracy, per-subset accuracy, MIA, ...)."""

    def grid_originals(self, data: Prepared, recipe: Any, plans: Mapping[str, Any], train_dir: Path,
                       cache: Path | None, device: Any) -> Callable[[int], GridOriginal]:
        """A grid's originals by seed (``plans``: each of the grid's methods, vanilla): image cells of every seed
        unlearn the train stage's model; a text grid's seed is its original's training seed."""

    def observe(self, model: Any, data: Prepared, parts: Any, seed: int, device: Any, path: Path) -> Any:
        """What scoring a grid's model needs (image: its outputs; text: its metrics row, for canary exposure
        needs the model), written to ``path`` plus the modality's suffix, and returned."""

    def observed_metrics(self, path: Path, data: Prepared, parts: Any, config: Any) -> dict[str, Any]:
        """The metrics row of what ``observe`` wrote to ``path`` (``config``: the evaluate section, seeded by the
        cell)."""

    def forget_set_facts(self, original: GridOriginal, data: Prepared, parts: Any) -> dict[str, Any]:
        """What a grid's forget set's oracle.json adds about the original the cells unlearn (text: its metrics)."""

    def cell_facts(self, original: GridOriginal, plan: Any, observed: Any, oracle_record: Mapping[str, Any],
                   data: Prepared) -> dict[str, Any]:
        """What a grid cell's record adds beside its keys, seconds and forget-set facts (text: the first-epoch
        gradient ascent paper's ablation facts)."""

    def grid_metrics(self, columns: Any) -> tuple[str, ...]:
        """The results table's columns the grids' report summarizes beside experiments/grid_report.py SUMMARY_METRICS."""

    def lira_sides(self, data: Prepared, parts: Any, strategy: str, plan: Any, ctx: Any, train_dir: Path,
                   oracle_cache: Path | None, unlearn_cache: Path | None) -> Any:
        """LiRA's Sides (experiments/forgetting_quality.py): how this modality makes an unlearned and a retrained
        copy of the model and observes one (its confidences on F, its accuracies)."""

    def claims(self, results: Any, params: Mapping[str, Any], metrics_dir: Path) -> tuple[Any, str]:
        """The papers' findings tested on the grids' seeds (``results``: results/grids/results.csv; ``params``:
        the claims, rum_compare and ablations sections): (the claims table, its markdown report)."""

    def figures(self, data: Prepared, results: Path, memorize: Path, out: Path) -> list[Path]:
        """Draw the study's figures from the stages' tables into ``out``; the files written."""

    def dataset_view(self, split: Any, data: Prepared) -> Any:
        """``split`` as MLflow's dataset inputs take it (``example_ids``, ``labels``)."""

    def model_card(self, info: Any) -> Any:
        """memunlearn.tracking.ModelCard: a registered model's input example and metadata."""

    # ---- deletion requests (requests/service.py, docs/requests.md) ----

    def registered_model(self, name: str, weights: Mapping[str, Any], info: Any, recipe: Any) -> Any:
        """Architecture ``name`` built for ``info`` holding ``weights`` (a registered version's), ready to unlearn."""

    def final_model_scores(self, model: Any, data: Prepared, proxy: str, device: Any) -> Any:
        """A request's plan scores of a version without exact scores: proxy ``proxy`` (``requests.proxy``, one a
        final model allows) of ``model`` over D, a Series by example_id, higher = more memorized."""

    def request_gates(self, start: Any, candidate: Any, forget: Any, retain: Any, data: Prepared, device: Any,
                      config: Any, exact: Any) -> "RequestCheck":
        """The oracle-free gates of a request (``config``: RequestsConfig; ``exact``: the memorize stage's table or
        None), every figure behind them and the modality's own tables (text: canary exposure before/after)."""


@dataclass(frozen=True)
class RequestCheck:
    """What ``Modality.request_gates`` finds: the gates (requests/gates.py ``Gate``), their figures and extra tables
    for the report (title -> rows, e.g. the request's canaries' exposure before and after)."""

    gates: list
    figures: dict[str, Any]
    tables: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


def dataset_problems(params: Mapping[str, Any]) -> list[str]:
    """The ``modality`` param against the modality ``data.dataset`` names (one line, naming the fix), or []."""
    from ..config import nested_value
    from ..data.base import data_modality

    name = params.get("modality", IMAGE)
    dataset = nested_value(params, "data", "dataset") or "mnist_embedded"
    if not isinstance(name, str) or name not in MODALITIES:
        return [f"modality: got {name!r}; choose one of: {', '.join(MODALITIES.names())}"]
    try:
        modality = data_modality(dataset)
    except UnknownNameError:
        return []  # reported by the data section's own check
    if modality == name:
        return []
    return [f"modality: {name!r}, but data.dataset {dataset!r} is {DATA_WORDS.get(modality, modality)}; set "
            f"modality: {modality} (params/text.yaml sets both for text)"]


def load_modality(name: str, prepared: Path | None = None) -> Modality:
    """The behaviour of modality ``name`` (the ``modality`` param); with ``prepared``, checks that the prepared
    data is of that modality."""
    if not isinstance(name, str) or name not in MODALITIES:
        raise ValueError(f"modality: got {name!r}; choose one of: {', '.join(MODALITIES.names())}")
    if prepared is not None and (found := prepared_modality(prepared)) != name:
        raise ValueError(f"modality: {name!r}, but {prepared} holds {found} data; run 'dvc repro prepare' "
                         f"(or set modality: {found})")
    return importlib.import_module(f"{__package__}.{name}.pipeline").MODALITY
