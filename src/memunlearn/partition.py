"""Scores -> forget set -> RUM refinement (METHODS.md §3-4).

A forget set is chosen by kind (random, class, or a low/mid/high group by a
chosen score), then refined into homogeneous ``low``/``mid``/``high``
subsets by a (possibly different) score, for RUM to unlearn in sequence.
Scores: exact memorization, any proxy, or ``entanglement`` (distance of the
original model's embedding to the global centroid, entanglement.py), which
gives the entanglement groups of METHODS.md §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .data.splits import ImageSplit
from .entanglement import SCORE_NAME as ENTANGLEMENT
from .memorization.proxies import score_columns
from .registry import Registry
from .seeding import derive_seed

SUBSETS = ("low", "mid", "high")  # RUM's order (METHODS.md §4)
EXACT_SCORES = {"exact": "mem", "exact_prob": "mem_prob"}  # score name -> column of the exact table


@dataclass(frozen=True)
class PartitionConfig:
    kind: str = "mix"  # a FORGET_KINDS name
    size: int = 300  # N; for kind=class, 0 takes every example of the classes
    group_score: str = "exact"  # score defining memorization groups: exact, exact_prob or a proxy
    refine_score: str = "exact"  # score splitting F into low/mid/high
    classes: tuple[int, ...] = ()  # for kind=class
    seed: int = 0
    device: str = "auto"  # for the original model's embeddings (entanglement score, ES metric)

    def validate(self) -> None:
        FORGET_KINDS.get(self.kind)
        if self.size < 0:
            raise ValueError(f"partition.size must be >= 0, got {self.size}")
        if self.kind != "class" and self.size < len(SUBSETS):
            raise ValueError(f"partition.size must be >= {len(SUBSETS)} to refine into {SUBSETS}, got {self.size}")


@dataclass(frozen=True)
class Score:
    """One per-example score and where its 'middle' is.

    Memorization scores: higher = more memorized. ``entanglement``: higher =
    farther from the centroid of D in the original model's embedding space.
    """

    name: str
    values: pd.Series  # indexed by example_id; NaN = unknown
    mid_target: float  # exact scores: 0.5 (METHODS.md §3); proxies and entanglement: their median


def lookup_score(name: str, exact: pd.DataFrame, proxies: pd.DataFrame,
                 entanglement: pd.Series | None = None) -> Score:
    """``exact``/``exact_prob`` from the exact table, ``entanglement`` from the given distances, else a proxy column.

    ``entanglement``: centroid distances by example_id (entanglement.centroid_distances).
    """
    if name in EXACT_SCORES:
        values = exact.set_index("example_id")[EXACT_SCORES[name]]
        return Score(name, values, 0.5)
    if name == ENTANGLEMENT:
        if entanglement is None:
            raise ValueError(f"score {name!r} needs the original model's embedding distances; pass "
                             f"entanglement=centroid_distances(...) (the partition stage does)")
        return Score(name, entanglement, float(entanglement.median()))
    proxy_names = score_columns(proxies)
    if name not in proxy_names:
        choices = sorted(EXACT_SCORES) + [ENTANGLEMENT] + sorted(proxy_names)
        raise ValueError(f"unknown score {name!r}; choose one of {choices}")
    values = proxies.set_index("example_id")[name]
    return Score(name, values, float(values.median()))


# ---- forget-set kinds --------------------------------------------------------

ForgetKind = Callable[[Score, pd.Series, PartitionConfig], np.ndarray]  # (score, labels by id, cfg) -> ids
FORGET_KINDS: Registry[ForgetKind] = Registry("forget-set kind")


def _eligible(score: Score, n: int) -> pd.Series:
    values = score.values.dropna()
    if n > len(values):
        raise ValueError(
            f"partition.size={n} is larger than the {len(values)} examples with a {score.name!r} score; "
            f"lower partition.size"
        )
    return values


def _closest(values: pd.Series, target: float, n: int) -> np.ndarray:
    order = np.argsort(np.abs(values.to_numpy() - target), kind="stable")
    return values.index.to_numpy()[order[:n]]


@FORGET_KINDS.register("high")
def high_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _eligible(score, cfg.size).nlargest(cfg.size).index.to_numpy()


@FORGET_KINDS.register("low")
def low_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _eligible(score, cfg.size).nsmallest(cfg.size).index.to_numpy()


@FORGET_KINDS.register("mid")
def mid_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _closest(_eligible(score, cfg.size), score.mid_target, cfg.size)


@FORGET_KINDS.register("mix")
def mix_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    """N/3 from each of high, low and mid, disjoint (high takes any remainder)."""
    values = _eligible(score, cfg.size)
    third = cfg.size // 3
    high = values.nlargest(cfg.size - 2 * third).index
    rest = values.drop(high)
    low = rest.nsmallest(third).index
    mid = _closest(rest.drop(low), score.mid_target, third)
    return np.concatenate([high.to_numpy(), low.to_numpy(), mid])


@FORGET_KINDS.register("random")
def random_set(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    if cfg.size > len(labels):
        raise ValueError(f"partition.size={cfg.size} is larger than the training set ({len(labels)}); lower it")
    rng = np.random.default_rng(derive_seed(cfg.seed, "forget/random"))
    return rng.choice(labels.index.to_numpy(), size=cfg.size, replace=False)


@FORGET_KINDS.register("class")
def class_set(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    if not cfg.classes:
        raise ValueError("partition.kind=class needs partition.classes, e.g. [3]")
    ids = labels.index[labels.isin(cfg.classes)].to_numpy()
    if cfg.size == 0:
        return ids
    if cfg.size > len(ids):
        raise ValueError(f"partition.size={cfg.size} is larger than classes {list(cfg.classes)} ({len(ids)}); lower it")
    rng = np.random.default_rng(derive_seed(cfg.seed, "forget/class"))
    return rng.choice(ids, size=cfg.size, replace=False)


# ---- RUM refinement ----------------------------------------------------------

def refine(forget_ids: np.ndarray, score: Score) -> pd.DataFrame:
    """Split F into equal low/mid/high thirds by ``score`` (RUM step 1).

    Forget examples without a score (exact scores of examples never held
    out) take the median of F, which places them in ``mid``.
    """
    values = score.values.reindex(forget_ids)
    values = values.fillna(values.median())
    order = np.argsort(values.to_numpy(), kind="stable")
    subset = np.empty(len(forget_ids), dtype=object)
    for name, chunk in zip(SUBSETS, np.array_split(order, len(SUBSETS))):
        subset[chunk] = name
    return pd.DataFrame({"example_id": np.asarray(forget_ids, dtype=np.int64), "subset": subset,
                         "refine_score": values.to_numpy()})


def make_forget_set(
    cfg: PartitionConfig, exact: pd.DataFrame, proxies: pd.DataFrame, labels: pd.Series,
    entanglement: pd.Series | None = None,
) -> pd.DataFrame:
    """The forget set with its RUM subsets: example_id, subset, refine_score, group_score.

    ``entanglement`` (centroid distances by example_id) is needed only when a score is ``entanglement``.
    """
    group = lookup_score(cfg.group_score, exact, proxies, entanglement)
    ids = FORGET_KINDS.get(cfg.kind)(group, labels, cfg)
    table = refine(ids, lookup_score(cfg.refine_score, exact, proxies, entanglement))
    table["group_score"] = group.values.reindex(table["example_id"]).to_numpy()
    return table.sort_values("example_id", ignore_index=True)


@dataclass(frozen=True)
class PartitionedData:
    forget: ImageSplit  # F
    retain: ImageSplit  # R = D \ F
    subsets: dict  # {"low"|"mid"|"high": ImageSplit}, the RUM refinement of F


def apply_partition(train: ImageSplit, forget_table: pd.DataFrame) -> PartitionedData:
    """Cut the training split into F, R and F's RUM subsets by example_id."""
    unknown = np.setdiff1d(forget_table["example_id"].to_numpy(), train.example_ids.numpy())
    if len(unknown):
        raise ValueError(f"{len(unknown)} forget ids are not in the training set; rerun `dvc repro partition`")
    ids = forget_table["example_id"].to_numpy()
    subsets = {name: train.select_ids(forget_table.loc[forget_table["subset"] == name, "example_id"].to_numpy())
               for name in SUBSETS}
    return PartitionedData(train.select_ids(ids), train.drop_ids(ids), subsets)
