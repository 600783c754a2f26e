"""Stage ``evaluate`` on text: per model (original, unlearned, retrain oracle) the forget/retain/validation/test
perplexity and next-token accuracy, per RUM subset the forget accuracy, canary exposure (Carlini et al. 2019),
loss-based MIA, and ToW / ToW-MIA against the oracle on next-token accuracy (evaluation/report.py ``compare``).
The headline keys (forget_acc, retain_acc, test_acc, mia, tow, tow_mia) mean what they mean for images, with
next-token accuracy in place of label accuracy."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...config import from_params
from ...data.corpus import load_tokenizer
from ...evaluation import EvaluateConfig
from ...evaluation.report import compare
from ...evaluation.text import canary_exposures, metrics_of, mia_of
from ...io import load_json, load_table, save_json, save_table
from ...partition import apply_partition
from ...tracking import StageRecord
from ...training.lm import load_lm_checkpoint, score_sequences
from ..base import StagePaths
from .common import load_prepared, logged

MODELS = {"original": ("train", "train"), "unlearned": ("unlearn", "unlearn"), "retrain": ("oracle", "oracle")}


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    config = from_params(EvaluateConfig, params["evaluate"], "evaluate")
    data = load_prepared(paths.prepared)
    parts = apply_partition(data.train, load_table(paths.partition / "forget.csv", "partition"))
    tokenizer = load_tokenizer(data.tokenizer_json)
    forgotten = data.canaries[data.canaries["example_id"].isin(parts.forget.example_ids.numpy())]
    rows = {}
    for name, (folder, stage) in MODELS.items():
        model = load_lm_checkpoint(getattr(paths, folder) / "model.pt", stage)[0]
        rows[name] = model_row(model, data, parts, tokenizer, forgotten, config.seed)
    table = compare(rows, oracle_key="retrain")
    seconds = {"unlearned": load_json(paths.metrics / "unlearn.json", "unlearn")["seconds"],
               "retrain": load_json(paths.metrics / "oracle.json", "oracle")["seconds"]}
    table["seconds"] = table["model"].map(seconds)
    save_table(table, paths.results / "evaluation.csv")
    metrics = {row["model"]: {k: v for k, v in row.items() if k != "model"} for row in table.to_dict("records")}
    save_json(metrics, paths.metrics / "evaluate.json")
    flat = {f"{m}.{k}": v for m, row in metrics.items() for k, v in row.items() if isinstance(v, (int, float))}
    copies = data.labels()
    return StageRecord("evaluate", metrics=flat, artifacts=[paths.results / "evaluation.csv"],
                       datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies),
                                 "T": logged(data.test)})


def model_row(model, data, parts, tokenizer, forgotten, seed: int) -> dict[str, float]:
    pad = data.info.pad_id
    splits = {"forget": parts.forget, "retain": parts.retain, "test": data.test,
              **({"validation": data.validation} if data.validation is not None else {})}
    scores = {name: score_sequences(model, split, pad) for name, split in splits.items()}  # each split once
    row: dict[str, float] = {}
    for split_name, table in scores.items():
        m = metrics_of(table)
        row |= {f"{split_name}_acc": m["token_acc"], f"{split_name}_ppl": m["perplexity"],
                f"{split_name}_loss": m["loss"]}
    forget = scores["forget"]
    for subset, split in parts.subsets.items():  # F's rows of each RUM subset
        rows = forget[forget["example_id"].isin(split.example_ids.numpy())]
        row[f"forget_acc_{subset}"] = metrics_of(rows)["token_acc"] if len(split) else np.nan
    mia = mia_of(*(scores[name]["loss"].to_numpy() for name in ("retain", "test", "forget")), seed=seed)
    row |= {"mia": mia["mia_forget"], "mia_auc": mia["auc"]}
    if len(data.canaries):
        exposures = canary_exposures(model, tokenizer, data.canaries, data.canary_template, data.canary_digits)
        row["exposure_mean"] = float(exposures["exposure"].mean())
        row |= {f"exposure_{c}x": float(e) for c, e in exposures.groupby("copies")["exposure"].mean().items()}
        in_forget = exposures["canary"].isin(forgotten["canary"].unique())
        row["forget_exposure"] = float(exposures.loc[in_forget, "exposure"].mean()) if in_forget.any() else np.nan
    return row
