"""A language model's metrics on a text run (the evaluate stage's and a text grid cell's row): per split the
perplexity, loss and next-token accuracy, per RUM subset the forget accuracy, canary exposure (Carlini et al.
2019) and loss-based MIA. The headline keys (forget_acc, retain_acc, test_acc, mia) mean what they mean for
images, with next-token accuracy in place of label accuracy; ToW / ToW-MIA come from evaluation/report.py
``compare`` over these rows."""
from __future__ import annotations

import numpy as np

from .evaluation import canary_exposures, metrics_of, mia_of
from .lm import score_sequences


def model_row(model, data, parts, tokenizer, forgotten, seed: int) -> dict[str, float]:
    """``model``'s row on ``data`` (a PreparedRun) with F, R and its subsets from ``parts``; ``forgotten``: the
    canary rows whose copies are in F; ``seed``: the MIA's."""
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
