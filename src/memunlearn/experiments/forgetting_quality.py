"""LiRA-style forgetting quality: unlearn and retrain many copies, then score F (docs/methods.md §6).

The driver of the ``forgetting_quality`` stage; the score itself (per-example
ε, buckets, final score) is the pure ``evaluation/lira.py``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from torch import nn
from tqdm import tqdm

from ..config import ConfigError
from ..data.splits import ImageSplit
from ..evaluation.lira import MIN_COPIES, final_score, forget_score, logit_scaled_confidence
from ..partition import PartitionedData
from ..training.loop import accuracy, predict_logits, predict_proba
from ..training.oracle import cached_oracle
from ..unlearning import METHODS, STRATEGIES, UnlearnContext, UnlearnPlan
from ..unlearning.cache import cached_strategy
from ..unlearning import UnlearnConfig


@dataclass(frozen=True)
class ForgettingQualityConfig:
    """Params section ``forgetting_quality``; ``None`` = take the ``unlearn`` section's value."""

    copies: int = 3  # unlearned and retrained models each (reference: 512)
    null_baseline: bool = True  # also score `copies` more retrained models against the retrained ones: what a
    #                             perfect unlearner gets at this number of copies (the score's small-sample bias)
    method: str | None = None  # None: unlearn.method with all its per-subset settings
    strategy: str | None = None  # None: unlearn.strategy
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if not isinstance(self.copies, int) or self.copies < MIN_COPIES:
            raise ConfigError(f"forgetting_quality.copies must be an int >= {MIN_COPIES} (with 2 copies the "
                              f"ε scale ceil(ln(copies-1)) is 0 and every score is 0), got {self.copies!r}")
        if self.copies > MAX_COPIES:
            raise ConfigError(f"forgetting_quality.copies must be <= {MAX_COPIES} (copy k's seeds are seed + k, "
                              f"seed + {MAX_COPIES} + k, ...: more would share seeds between sides), "
                              f"got {self.copies}")
        if self.method is not None:
            METHODS.get(self.method)
        if self.strategy is not None:
            STRATEGIES.get(self.strategy)

    def resolve(self, unlearn: UnlearnConfig) -> UnlearnConfig:
        """The unlearning run to evaluate: ``unlearn`` with this section's method/strategy where given.

        A method given here drops ``unlearn``'s per-subset settings (they were chosen for its method).
        """
        if self.method is None:
            resolved = replace(unlearn, seed=self.seed, device=self.device)
        else:
            resolved = UnlearnConfig(method=self.method, strategy=unlearn.strategy, seed=self.seed, device=self.device)
        resolved = replace(resolved, strategy=self.strategy or resolved.strategy)
        resolved.validate()
        return resolved


@dataclass(frozen=True)
class ForgettingQualityResult:
    example_ids: np.ndarray  # (N,) the forget set, in confidence-column order
    unlearned_confs: np.ndarray  # (copies, N) logit-scaled confidences
    retrained_confs: np.ndarray  # (copies, N)
    epsilons: np.ndarray  # (N,)
    points: np.ndarray  # (N,) 2^(−bucket)
    forget_score: float
    final_score: float
    accuracies: Mapping[str, float]  # {unlearned,retrained}_{forget,retain,test}_acc, means over copies
    seconds: Mapping[str, float]  # {unlearned, retrained}: mean wall time of one copy
    null_forget_score: float = float("nan")  # retrained (disjoint seeds) vs retrained: a perfect unlearner's score

    def table(self) -> pd.DataFrame:
        """Per forget example: ε, points, median confidence on each side."""
        return pd.DataFrame({
            "example_id": self.example_ids, "epsilon": self.epsilons, "points": self.points,
            "median_conf_unlearned": np.median(self.unlearned_confs, axis=0),
            "median_conf_retrained": np.median(self.retrained_confs, axis=0),
        })

    def metrics(self) -> dict[str, Any]:
        return {"forget_score": self.forget_score, "final_score": self.final_score,
                "null_forget_score": self.null_forget_score,
                "copies": int(self.unlearned_confs.shape[0]), "epsilon_mean": float(self.epsilons.mean()),
                "epsilon_median": float(np.median(self.epsilons)), **self.accuracies,
                **{f"{k}_seconds_per_copy": v for k, v in self.seconds.items()}}


# copy k of a side has seed ``seed + offset + k``: the sides' seeds are disjoint (so is every pair of models, even
# when the method is ``retrain``), and the unlearned copies' are the grid cells' seeds 0, 1, 2, ...
SEED_OFFSETS = {"unlearned": 0, "retrained": 1000, "retrained_null": 2000}
MAX_COPIES = SEED_OFFSETS["retrained"]  # more would make the sides' seeds overlap


@dataclass(frozen=True)
class Sides:
    """How one modality makes and observes the model copies (the image path: ``image_sides``; text:
    modality/text/pipeline.py ``text_sides``). Each maker gets the copy's context (its seed in ``ctx.seed``)."""

    unlearned: Callable[[UnlearnContext], tuple[nn.Module, float]]  # -> (model, seconds it took)
    retrained: Callable[[UnlearnContext], tuple[nn.Module, float]]
    observe: Callable[[nn.Module], tuple[np.ndarray, dict[str, float]]]  # -> (confidences on F (N,),
    #                                                                           {forget,retain,test}_acc)


def image_sides(original: nn.Module, parts: PartitionedData, test: ImageSplit, strategy: str, plan: UnlearnPlan,
                ctx: UnlearnContext, oracle_cache: Path | None = None, unlearn_cache: Path | None = None) -> Sides:
    """An image model's copies: ``original`` unlearned (unlearning cache), models retrained on R (oracle cache);
    observed as logit-scaled label confidence on F and label accuracy."""
    def unlearned(c):
        model, _, seconds, _ = cached_strategy(strategy, copy.deepcopy(original), parts.subsets, parts.retain, plan,
                                               c, unlearn_cache)
        return model, seconds

    def retrained(c):
        return cached_oracle(parts.retain, c.info, c.retrain_recipe, c.device, c.seed, oracle_cache)[:2]

    def observe(model):
        logits = predict_logits(model, parts.forget, ctx.info, ctx.device)
        accs = {"forget_acc": accuracy(logits, parts.forget.labels)}
        for name, split in (("retain", parts.retain), ("test", test)):
            accs[f"{name}_acc"] = accuracy(predict_proba(model, split, ctx.info, ctx.device), split.labels)
        return logit_scaled_confidence(logits, parts.forget.labels), accs

    return Sides(unlearned, retrained, observe)


def forgetting_quality(original: nn.Module, parts: PartitionedData, test: ImageSplit, strategy: str,
                       plan: UnlearnPlan, ctx: UnlearnContext, copies: int, null_baseline: bool = True,
                       oracle_cache: Path | None = None, unlearn_cache: Path | None = None
                       ) -> ForgettingQualityResult:
    """Forgetting quality of an image model's unlearning: ``score_copies`` of ``image_sides``."""
    return score_copies(image_sides(original, parts, test, strategy, plan, ctx, oracle_cache, unlearn_cache),
                        parts.forget.example_ids.numpy(), ctx, copies, null_baseline)


def score_copies(sides: Sides, forget_ids: np.ndarray, ctx: UnlearnContext, copies: int,
                 null_baseline: bool = True) -> ForgettingQualityResult:
    """Make ``copies`` unlearned and ``copies`` retrained models, then score F (docs/methods.md §6).

    With ``null_baseline``, ``copies`` more retrained models (seeds disjoint from the
    first) are scored against the retrained ones the same way: both samples
    come from one distribution, so this is what a perfect unlearner scores
    with this few copies (the score's small-sample bias; it shrinks as copies
    grow). Copy k of a side is the run with seed ``ctx.seed + SEED_OFFSETS[side]
    + k``, so copy k is the same model whatever ``copies`` is (docs/architecture.md
    rule 5), and unlearned copy k is the run a grid cell with seed k makes on
    this forget set: through the unlearning cache (and the oracle cache for the
    retrained side), a run made before is loaded, with the seconds it took.
    """
    if not MIN_COPIES <= copies <= MAX_COPIES:
        raise ValueError(f"copies must be in [{MIN_COPIES}, {MAX_COPIES}], got {copies}")
    runs = {"unlearned": sides.unlearned, "retrained": sides.retrained}
    if null_baseline:
        runs["retrained_null"] = sides.retrained
    confs: dict[str, list[np.ndarray]] = {side: [] for side in runs}
    accs: dict[str, list[dict]] = {side: [] for side in runs}
    seconds = {side: 0.0 for side in runs}
    bar = tqdm(total=copies * len(runs), desc="LiRA copies", unit="model", disable=None)
    for side, run in runs.items():
        for k in range(copies):
            model, took = run(replace(ctx, seed=ctx.seed + SEED_OFFSETS[side] + k))
            seconds[side] += took / copies
            c, a = sides.observe(model)
            confs[side].append(c)
            accs[side].append(a)
            bar.update()
    bar.close()

    mean_acc = {f"{side}_{key}": float(np.mean([a[key] for a in accs[side]]))
                for side in ("unlearned", "retrained") for key in ("forget_acc", "retain_acc", "test_acc")}
    u, r = np.stack(confs["unlearned"]), np.stack(confs["retrained"])  # (copies, N)
    score, eps, points = forget_score(u, r)
    final = final_score(score, mean_acc["unlearned_retain_acc"], mean_acc["retrained_retain_acc"],
                        mean_acc["unlearned_test_acc"], mean_acc["retrained_test_acc"])
    null_score = forget_score(np.stack(confs["retrained_null"]), r)[0] if null_baseline else float("nan")
    return ForgettingQualityResult(np.asarray(forget_ids), u, r, eps, points, score, final, mean_acc,
                                   {k: seconds[k] for k in ("unlearned", "retrained")}, null_score)
