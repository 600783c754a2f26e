"""Stage ``forgetting_quality`` on text: LiRA-style forgetting quality (docs/methods.md §6) of a language model's
unlearning, scored as the image path scores it (experiments/forgetting_quality.py ``score_copies``).

What differs from images:

- A sequence's confidence is the logit-scaled geometric-mean token probability ``log p − log(1 − p)``,
  p = exp(−mean next-token NLL) (evaluation/lira.py ``logit_scaled_sequence_confidence``); accuracies are
  next-token accuracies.
- Unlearned copy k unlearns an original trained with seed k (the text grids' seed: modality/text/grid.py), not
  one shared original: first-epoch ascent draws nothing, so copies of one original would be one model and the
  unlearned sample a constant. The originals and the retrained copies go through the text model cache
  (modality/text/cache.py), the unlearning runs through the unlearning cache, so a grid's seed-k original,
  oracle or cell with the same data, recipe and recorded layers is loaded, not trained again.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Mapping

from ...config import from_params
from ...devices import resolve_device
from ...evaluation.lira import logit_scaled_sequence_confidence
from ...evaluation.text import lm_metrics, metrics_of
from ...experiments.forgetting_quality import ForgettingQualityConfig, Sides, score_copies
from ...io import load_table, save_json, save_table
from ...partition import PartitionedData, apply_partition
from ...tracking import StageRecord
from ...training.lm import score_sequences
from ...training.recipe import TrainConfig
from ...unlearning import UnlearnConfig, UnlearnContext, UnlearnPlan
from ...unlearning.cache import cached_strategy
from ..base import StagePaths
from .common import PreparedRun, load_prepared, logged
from .cache import cached_oracle
from .trained import ascent, cached_original, recorded_layers


def text_sides(data: PreparedRun, parts: PartitionedData, strategy: str, plan: UnlearnPlan,
               ctx: UnlearnContext, oracle_cache=None, unlearn_cache=None) -> Sides:
    """A language model's copies: the original of seed k (recording the layers ``plan``'s first-epoch ascent
    reads) unlearned with seed k, and models retrained on R; observed on F as sequence confidences."""
    info, recipe, pad = data.info, ctx.recipe, data.info.pad_id
    layers = recorded_layers([ascent(plan)])

    def unlearned(c):
        original, grads, _, _ = cached_original(oracle_cache, data, recipe, c.seed, layers)
        c = UnlearnContext(info, recipe, c.device, c.seed, first_epoch_grads=grads, heldout=data.validation)
        model = copy.deepcopy(original)
        model, _, seconds, _ = cached_strategy(strategy, model, parts.subsets, parts.retain, plan, c, unlearn_cache)
        return model, seconds

    def retrained(c):
        model, record, _ = cached_oracle(oracle_cache, parts.retain, info, recipe, c.seed)
        return model, record["seconds"]

    def observe(model):
        forget = score_sequences(model, parts.forget, pad)  # F once: its confidences and its accuracy
        accs = {"forget_acc": metrics_of(forget)["token_acc"],
                **{f"{name}_acc": lm_metrics(model, split, pad)["token_acc"]
                   for name, split in (("retain", parts.retain), ("test", data.test))}}
        return logit_scaled_sequence_confidence(forget["loss"].to_numpy()), accs

    return Sides(unlearned, retrained, observe)


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(ForgettingQualityConfig, params["forgetting_quality"], "forgetting_quality")
    evaluated = config.resolve(from_params(UnlearnConfig, params["unlearn"], "unlearn"))
    plan = evaluated.plan(params["methods"])
    data = load_prepared(paths.prepared)
    parts = apply_partition(data.train, load_table(paths.partition / "forget.csv", "partition"))
    ctx = UnlearnContext(data.info, recipe, resolve_device(config.device), config.seed, heldout=data.validation)
    sides = text_sides(data, parts, evaluated.strategy, plan, ctx, paths.oracle_cache, paths.unlearn_cache)
    start = time.perf_counter()
    result = score_copies(sides, parts.forget.example_ids.numpy(), ctx, config.copies, config.null_baseline)
    seconds = time.perf_counter() - start
    save_table(result.table(), paths.results / "forgetting_quality.csv")
    metrics = {**result.metrics(), "method": evaluated.method, "strategy": evaluated.strategy, "seconds": seconds}
    save_json(metrics, paths.metrics / "forgetting_quality.json")
    copies = data.labels()
    return StageRecord("forgetting_quality", metrics=metrics, artifacts=[paths.results / "forgetting_quality.csv"],
                       datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies)})
