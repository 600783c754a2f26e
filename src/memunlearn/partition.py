"""Scores -> forget set -> RUM refinement (docs/methods.md §3-4).

A forget set is chosen by kind (random, class, or a low/mid/high group by a
chosen score), then refined into homogeneous ``low``/``mid``/``high``
subsets by a (possibly different) score, for RUM to unlearn in sequence.
Scores: exact memorization, any proxy, ``entanglement`` (the ES of the
example's centroid-distance bin, entanglement.py) or ``centroid_distance``.

Ties are broken by a seeded random order, never by id or file order: exact
``mem`` is exactly 0 for most easy examples, and datasets are often stored
sorted by class, so an id-order tie-break would make "low memorization" mean
"the first class". ``describe_forget_set`` reports what a set is made of
(class histogram, planted noise, ES of F and of each RUM subset) so that a
reader can check that a set is what its name says.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .config import ConfigError, from_params
from .data.splits import ImageSplit
from .entanglement import DEFAULT_BINS, DISTANCE_NAME, SCORE_NAME as ENTANGLEMENT
from .entanglement import binned_entanglement, centroid_distances, split_entanglement
from .memorization.proxies import score_columns
from .registry import Registry
from .seeding import derive_seed

SUBSETS = ("low", "mid", "high")  # RUM's order (docs/methods.md §4)
EXACT_SCORES = {"exact": "mem", "exact_prob": "mem_prob"}  # score name -> column of the exact table
EMBEDDING_SCORES = (ENTANGLEMENT, DISTANCE_NAME)  # scores computed from the original model's embeddings


@dataclass(frozen=True)
class PartitionConfig:
    kind: str = "mix"  # a FORGET_KINDS name
    size: int = 300  # N; for kind=class, 0 takes every example of the classes
    group_score: str = "exact_prob"  # score defining memorization groups: exact, exact_prob or a proxy
    refine_score: str = "exact_prob"  # score splitting F into low/mid/high (same choices)
    classes: tuple[int, ...] = ()  # for kind=class
    entanglement_bins: int = DEFAULT_BINS  # centroid-distance bins of the ``entanglement`` score
    seed: int = 0  # tie-breaks, random and class draws
    device: str = "auto"  # for the original model's embeddings (entanglement scores, ES metrics)
    exclude_planted_noise: bool = False  # draw F only from examples without planted noise (image: flipped labels;
    #                                      text: canary copies): the clean control of a memorization level

    def validate(self) -> None:
        FORGET_KINDS.get(self.kind)
        if self.size < 0:
            raise ValueError(f"partition.size must be >= 0, got {self.size}")
        if self.kind not in ("class", "canaries") and self.size < len(SUBSETS):
            raise ValueError(f"partition.size must be >= {len(SUBSETS)} to refine into {SUBSETS}, got {self.size}")
        if self.entanglement_bins < 1:
            raise ValueError(f"partition.entanglement_bins must be >= 1, got {self.entanglement_bins}")


GRID_KEYS = ("group_score", "kind", "seed")  # an experiment grid sets these per forget set, never in its `partition`


def grid_forget_set(shared: Mapping[str, Any], group_score: str, kind: str, seed: int,
                    fixed_group_score: str = "", section: str = "ablations") -> dict[str, Any]:
    """The ``PartitionConfig`` params of one (grid score, kind, seed) forget set of a grid (validated).

    ``shared``: the keys every forget set of the grid shares (its ``partition``). The forget set is the grid
    score's own group, refined by ``shared["refine_score"]`` or else by the same score; with
    ``fixed_group_score`` it is that score's group, refined by the grid score (src/memunlearn/grid.py)."""
    fixed = sorted(set(GRID_KEYS) & set(shared))
    if fixed:
        raise ConfigError(f"{section}.partition must not set {fixed}: every cell takes them from the grid "
                          f"({section}.group_scores, kinds, seeds)")
    if fixed_group_score and "refine_score" in shared:
        raise ConfigError("a grid with fixed_group_score refines by its group_scores axis; remove "
                          "partition.refine_score")
    if fixed_group_score:
        chosen = {"group_score": fixed_group_score, "refine_score": group_score}
    else:
        chosen = {"group_score": group_score, "refine_score": shared.get("refine_score", group_score)}
    params = {**shared, **chosen, "kind": kind, "seed": seed}
    from_params(PartitionConfig, params, f"{section}.partition")
    return params


@dataclass(frozen=True)
class ScoreSources:
    """Everything a score is looked up in; every table is keyed by example_id."""

    exact: pd.DataFrame  # the memorize stage's scores (mem, mem_prob, ...)
    proxies: pd.DataFrame  # the proxies stage's table
    labels: pd.Series  # label by example_id, all of D (text: the copy count of a planted canary, 0 for corpus text)
    embeddings: np.ndarray | None = None  # (N, D) penultimate layer of the original model, rows in labels' order
    planted: np.ndarray | None = None  # ids of the planted examples (image: flipped labels; text: canary copies);
    #                                    None = not known (then no forget set can exclude them)


def score_sources(train: ImageSplit, original, info, exact: pd.DataFrame, proxies: pd.DataFrame,
                  device, planted=None) -> ScoreSources:
    """ScoreSources for ``train`` with the original model's embeddings (N, D) and the planted-noise ids."""
    from .entanglement import embed_split  # imports the training loop; only stages that embed need it

    labels = pd.Series(train.labels.numpy(), index=pd.Index(train.example_ids.numpy(), name="example_id"))
    return ScoreSources(exact, proxies, labels, embed_split(original, train, info, device),
                        None if planted is None else np.asarray(planted, dtype=np.int64))


@dataclass(frozen=True)
class Score:
    """One per-example score and where its 'middle' is.

    Memorization scores: higher = more memorized. ``entanglement``: higher =
    more entangled with the rest of D.
    """

    name: str
    values: pd.Series  # indexed by example_id; NaN = unknown
    mid_target: float  # exact scores: 0.5 (docs/methods.md §3); other scores: their median


def lookup_score(name: str, sources: ScoreSources, bins: int = DEFAULT_BINS) -> Score:
    """``exact``/``exact_prob`` from the exact table, the embedding scores from ``sources.embeddings``,
    else a proxy column."""
    if name in EXACT_SCORES:
        values = sources.exact.set_index("example_id")[EXACT_SCORES[name]]
        return Score(name, values, 0.5)
    if name in EMBEDDING_SCORES:
        if sources.embeddings is None:
            raise ValueError(f"score {name!r} needs the original model's embeddings; pass "
                             f"ScoreSources(embeddings=...) (the partition and grids stages do)")
        ids = sources.labels.index.to_numpy()
        values = (binned_entanglement(sources.embeddings, ids, bins) if name == ENTANGLEMENT
                  else centroid_distances(sources.embeddings, ids))
        return Score(name, values, float(values.median()))
    proxy_names = score_columns(sources.proxies)
    if name not in proxy_names:
        choices = sorted(EXACT_SCORES) + list(EMBEDDING_SCORES) + sorted(proxy_names)
        raise ValueError(f"unknown score {name!r}; choose one of {choices}")
    values = sources.proxies.set_index("example_id")[name]
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


def _tie_broken_order(key: np.ndarray, seed: int, purpose: str) -> np.ndarray:
    """Positions sorting ``key`` ascending, ties in an order drawn from ``seed`` (never by position)."""
    tiebreak = np.random.default_rng(derive_seed(seed, purpose)).permutation(len(key))
    return np.lexsort((tiebreak, key))


def _ranked(values: pd.Series, key: np.ndarray, seed: int) -> np.ndarray:
    """Example ids of ``values`` sorted by ``key`` ascending, ties in a seeded random order."""
    return values.index.to_numpy()[_tie_broken_order(key, seed, "forget/ties")]


def _highest(values: pd.Series, n: int, seed: int) -> np.ndarray:
    return _ranked(values, -values.to_numpy(), seed)[:n]


def _lowest(values: pd.Series, n: int, seed: int) -> np.ndarray:
    return _ranked(values, values.to_numpy(), seed)[:n]


def _closest(values: pd.Series, target: float, n: int, seed: int) -> np.ndarray:
    return _ranked(values, np.abs(values.to_numpy() - target), seed)[:n]


@FORGET_KINDS.register("high")
def high_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _highest(_eligible(score, cfg.size), cfg.size, cfg.seed)


@FORGET_KINDS.register("low")
def low_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _lowest(_eligible(score, cfg.size), cfg.size, cfg.seed)


@FORGET_KINDS.register("mid")
def mid_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    return _closest(_eligible(score, cfg.size), score.mid_target, cfg.size, cfg.seed)


@FORGET_KINDS.register("mix")
def mix_group(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    """N/3 from each of high, low and mid, disjoint (high takes any remainder)."""
    values = _eligible(score, cfg.size)
    third = cfg.size // 3
    high = _highest(values, cfg.size - 2 * third, cfg.seed)
    rest = values.drop(high)
    low = _lowest(rest, third, cfg.seed)
    mid = _closest(rest.drop(low), score.mid_target, third, cfg.seed)
    return np.concatenate([high, low, mid])


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


@FORGET_KINDS.register("canaries")
def canary_set(score: Score, labels: pd.Series, cfg: PartitionConfig) -> np.ndarray:
    """Text: every copy of the planted canaries (labels = copy count, 0 for corpus sequences), only those
    inserted ``classes`` times when given (e.g. [16]); ``size`` 0. A canary's copies go together: a model that
    still sees one copy still sees the secret."""
    if cfg.size:
        raise ValueError("partition.kind=canaries takes every copy of the chosen canaries; set partition.size: 0 "
                         "(partition.classes picks canaries by copy count, e.g. [16])")
    chosen = labels[labels > 0]
    if cfg.classes:
        chosen = chosen[chosen.isin(cfg.classes)]
    if chosen.empty:
        raise ValueError(f"partition.kind=canaries: no canary inserted {list(cfg.classes) or 'any number of'} "
                         "times; see data.text.canary_copies")
    return chosen.index.to_numpy()


# ---- RUM refinement ----------------------------------------------------------

def refine(forget_ids: np.ndarray, score: Score, seed: int = 0) -> pd.DataFrame:
    """Split F into equal low/mid/high thirds by ``score`` (RUM step 1), ties in a seeded random order.

    Forget examples without a score (exact scores of examples never held
    out) take the median of F, which places them in ``mid``.
    """
    values = score.values.reindex(forget_ids)
    values = values.fillna(values.median())
    order = _tie_broken_order(values.to_numpy(), seed, "refine/ties")
    subset = np.empty(len(forget_ids), dtype=object)
    for name, chunk in zip(SUBSETS, np.array_split(order, len(SUBSETS))):
        subset[chunk] = name
    return pd.DataFrame({"example_id": np.asarray(forget_ids, dtype=np.int64), "subset": subset,
                         "refine_score": values.to_numpy()})


def choose_forget_set(cfg: PartitionConfig, sources: ScoreSources) -> pd.DataFrame:
    """The forget set with its RUM subsets: example_id, subset, refine_score, group_score, label.

    The one place a forget set is chosen: the partition stage, every grid
    forget set and every RUM comparison call it.
    """
    group = lookup_score(cfg.group_score, sources, cfg.entanglement_bins)
    candidates, labels = group, sources.labels
    if cfg.exclude_planted_noise:  # the kind ranks the clean examples only; the score itself is unchanged
        if sources.planted is None:
            raise ValueError("partition.exclude_planted_noise needs the planted examples' ids; build the sources "
                             "with the modality's score_sources (the partition and grids stages do)")
        candidates = Score(group.name, group.values.drop(sources.planted, errors="ignore"), group.mid_target)
        labels = labels.drop(sources.planted, errors="ignore")
    ids = FORGET_KINDS.get(cfg.kind)(candidates, labels, cfg)
    refine_by = group if cfg.refine_score == cfg.group_score else lookup_score(
        cfg.refine_score, sources, cfg.entanglement_bins)
    table = refine(ids, refine_by, cfg.seed)
    table["group_score"] = group.values.reindex(table["example_id"]).to_numpy()
    table["label"] = sources.labels.reindex(table["example_id"]).to_numpy()
    return table.sort_values("example_id", ignore_index=True)


def describe_forget_set(forget: pd.DataFrame, sources: ScoreSources, planted_noise=()) -> dict:
    """What F is made of: sizes, class histogram and largest class share, planted-noise count,
    ES of F against R and of each RUM subset against the rest of D (when embeddings are given)."""
    labels = sources.labels.reindex(forget["example_id"]).to_numpy()
    histogram = pd.Series(labels).value_counts().sort_index()
    by_subset = forget.groupby("subset")
    out = {
        "forget_size": len(forget),
        "retain_size": len(sources.labels) - len(forget),
        "planted_noise_in_forget": int(forget["example_id"].isin(set(planted_noise)).sum()),
        "class_histogram": {str(k): int(v) for k, v in histogram.items()},
        "largest_class": int(histogram.idxmax()),
        "largest_class_share": float(histogram.max() / len(forget)),
        "subset_size": by_subset.size().to_dict(),
        "subset_mean_refine_score": by_subset["refine_score"].mean().to_dict(),
        "subset_largest_class_share": {
            name: float(sources.labels.reindex(part["example_id"]).value_counts(normalize=True).max())
            for name, part in by_subset},
    }
    if sources.embeddings is not None:
        ids = sources.labels.index.to_numpy()
        out["entanglement_score"] = split_entanglement(sources.embeddings, ids, forget["example_id"])
        out["subset_entanglement_score"] = {
            name: split_entanglement(sources.embeddings, ids, part["example_id"]) for name, part in by_subset}
    return out


def entanglement_kinds_es(cfg: PartitionConfig, sources: ScoreSources) -> dict[str, float]:
    """ES of the low/mid/high entanglement forget sets this config's size and seed would give."""
    ids = sources.labels.index.to_numpy()
    score = lookup_score(ENTANGLEMENT, sources, cfg.entanglement_bins)  # once for the three kinds
    out = {}
    for kind in SUBSETS:
        kind_cfg = PartitionConfig(kind=kind, size=cfg.size, group_score=ENTANGLEMENT, refine_score=ENTANGLEMENT,
                                   entanglement_bins=cfg.entanglement_bins, seed=cfg.seed)
        forget_ids = FORGET_KINDS.get(kind)(score, sources.labels, kind_cfg)  # choose_forget_set's F, unrefined
        out[kind] = split_entanglement(sources.embeddings, ids, forget_ids)
    return out


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
