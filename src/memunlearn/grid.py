"""Experiment grids: which cells an experiment runs (params sections ``ablations``, ``levels``, ``rum_compare``,
``entanglement``, ``levels_clean``).

A grid is methods x scores x forget-set kinds x strategies x seeds. Each
grid is its own params section; one DVC stage runs them all (``grids``,
stages/grids.py): one forget set and oracle per (score, kind, seed), one
unlearning run per cell, each its own MLflow run (``<grid>_oracle@<score>-
<kind>-<seed>``, ``<grid>_cell@<method>-<score>-<kind>-<strategy>-<seed>``);
the default grids share no cell, so nothing is computed twice. This module
is only the grid's typed config: it is a dependency of the grids stage, so
it holds nothing a report changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from .config import ConfigError
from .partition import FORGET_KINDS, grid_forget_set
from .unlearning import METHODS, STRATEGIES, UnlearnPlan

# params sections holding a grid; dvc.yaml: stage grids
GRIDS = ("ablations", "levels", "rum_compare", "entanglement", "levels_clean")
TUNED = "tuned"  # the grid whose arms the tune stage searches and whose cells run at their tuned values
TUNED_MODALITIES = ("image",)  # modalities that tune (experiments/tune.py); text runs the other grids only
KEYS = ("grid", "method", "group_score", "kind", "strategy", "seed")  # one cell
ORACLE_OBSERVATION = "outputs"  # what scoring reads of a forget set's oracle, in its folder (+ the modality's suffix)
AXES = ("methods", "group_scores", "kinds", "strategies", "seeds")  # a grid's lists, one per KEYS entry after grid
# which original model and scores each seed reads (experiments/originals.py): the pipeline's one, or its own
ORIGINALS = ("shared", "per_seed")


def grid_sections(modality: str) -> tuple[str, ...]:
    """The grids a run of ``modality`` runs: GRIDS, and the tuned grid where the modality tunes."""
    return GRIDS + ((TUNED,) if modality in TUNED_MODALITIES else ())


def forget_set_name(cell: Mapping[str, Any]) -> str:
    """``<score>-<kind>-<seed>``: a forget set's folder under ``data/grids/<grid>/``; its MLflow run is
    ``<grid>_oracle@<name>``."""
    return f"{cell['group_score']}-{cell['kind']}-{cell['seed']}"


def cell_name(cell: Mapping[str, Any]) -> str:
    """``<method>-<score>-<kind>-<strategy>-<seed>``: a cell's files; its MLflow run is ``<grid>_cell@<name>``."""
    return "-".join(str(cell[k]) for k in KEYS[1:])


@dataclass(frozen=True)
class GridConfig:
    """One grid's params section: the grid, and what every cell's forget set shares (``partition``)."""

    methods: tuple[str, ...] = ("neggrad_plus",)  # methods.<name> blocks: a METHODS name, or a block naming one
    group_scores: tuple[str, ...] = ("exact_prob",)  # scores whose groups make the forget sets
    kinds: tuple[str, ...] = ("low", "high", "mix")  # FORGET_KINDS names
    strategies: tuple[str, ...] = ("vanilla", "vanilla_budget", "shuffle", "rum_f")  # STRATEGIES names
    seeds: tuple[int, ...] = (0, 1, 2)
    partition: Mapping[str, Any] = field(default_factory=dict)  # PartitionConfig keys but the grid's
    fixed_group_score: str = ""  # "": each forget set is its score's own group; a score: every forget set is
    #                              that score's group, refined by the grid's score (fixed-F comparison)
    first_method_only: tuple[str, ...] = ()  # strategies run with the first method only: full RUM (`rum`), whose
    #                                          per-subset methods make the method axis moot
    device: str = "auto"
    originals: str = "shared"  # ORIGINALS: shared = every seed unlearns the train stage's original with the
    #                            memorize/proxies stages' scores; per_seed = each seed its own
    #                            (experiments/originals.py)

    def validate(self, section: str = "ablations") -> None:
        """Every axis non-empty, unique and registered, every forget set's partition valid; ``section``: the
        grid's params section, named in the messages."""
        for name, registry in (("methods", METHODS), ("kinds", FORGET_KINDS), ("strategies", STRATEGIES)):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"{section}.{name} is empty; list at least one of: {', '.join(registry.names())}")
            if name != "methods":  # a method may be a named methods block: each cell's plan checks it
                for value in values:
                    registry.get(value)
        if self.originals not in ORIGINALS:
            raise ConfigError(f"{section}.originals: got {self.originals!r}; choose one of: {', '.join(ORIGINALS)}")
        if not self.seeds:
            raise ConfigError(f"{section}.seeds is empty; list at least one seed (>= 3 for a confidence interval)")
        if not self.group_scores:
            raise ConfigError(f"{section}.group_scores is empty; list at least one, e.g. [exact]")
        for name in AXES:
            values = list(getattr(self, name))
            if len(set(values)) != len(values):
                raise ConfigError(f"{section}.{name} lists a value twice: {values}; each cell must be unique")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"{section}.seeds must be integers, got {list(self.seeds)}")
        if stray := [s for s in self.first_method_only if s not in self.strategies]:
            raise ConfigError(f"{section}.first_method_only: {stray} not in {section}.strategies; list strategies "
                              "of the grid")
        for kind in self.kinds:  # bad forget-set params fail here, before any cell runs
            self.partition_params(self.group_scores[0], kind, self.seeds[0], section)

    def check_methods(self, blocks: Mapping[str, Mapping[str, Any]]) -> None:
        """Every grid method is a registered method or a ``methods.<name>`` block naming one (``method:``)."""
        for name in self.methods:
            UnlearnPlan(name, blocks).registered(name)

    def partition_params(self, group_score: str, kind: str, seed: int, section: str = "ablations"
                         ) -> dict[str, Any]:
        """The ``PartitionConfig`` params of one (grid score, kind, seed) forget set (validated; see
        ``partition.grid_forget_set``, which stages/grids.py calls through this)."""
        return grid_forget_set(self.partition, group_score, kind, seed, self.fixed_group_score, section)

    def scores(self) -> set[str]:
        """Every score the grid's forget sets read: its group scores, fixed group score and refine score."""
        return {*self.group_scores, self.fixed_group_score, str(self.partition.get("refine_score", ""))} - {""}

    def cells(self, grid: str = "ablations") -> pd.DataFrame:
        """Every cell of the grid, in grid order: one column per KEYS entry (``first_method_only`` strategies with
        the first method only)."""
        index = pd.MultiIndex.from_product([[grid], *(getattr(self, axis) for axis in AXES)], names=KEYS)
        cells = index.to_frame(index=False)
        dropped = cells["strategy"].isin(self.first_method_only) & (cells["method"] != self.methods[0])
        return cells.loc[~dropped].reset_index(drop=True)

