"""What `memunlearn report` prints when a run ends (`make run`, `make full`, `make text`): the headline
(metrics/summary.json, src/memunlearn/headline.py), each claim with its verdict (results/claims.csv,
src/memunlearn/evaluation/claims.py or src/memunlearn/modality/text/claims.py: the same columns) and where to
look next. Every line fits ``WIDTH`` characters. Pure: a mapping and a table in, text out (the CLI reads the
files)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from .headline import UNLEARNED

WIDTH = 120
INPUTS = {"metrics/summary.json": "summary", "results/claims.csv": "claims"}  # file -> the stage that writes it
SHORT = {"tow": "ToW", "tow_mia": "ToW-MIA", "forget_acc": "FA", "retain_acc": "RA", "test_acc": "TA"}
SCORES = ("tow", "tow_mia")  # the rest of headline.py's UNLEARNED keys are accuracies
# What the planted AUROC measures: the image run plants label noise, the text run canaries (the text memorize
# stage writes the canaries' AUROC under the same key, modality/text/pipeline.py memorize).
PLANTED = {"image": "planted-noise AUROC", "text": "canary AUROC"}
ACCURACY = {"image": "accuracy", "text": "next-token accuracy"}


def number(value: Any, spec: str = ".3f") -> str:
    """``value`` formatted, or "n/a" where the run has none (null, NaN: e.g. too few models for stability)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _row(label: str, text: str) -> str:
    return f"  {label:<16}  {text}"


def _values(summary: Mapping[str, Any], keys) -> str:
    return "   ".join(f"{SHORT.get(k, k)} {number(summary.get(k))}" for k in keys)


def headline_lines(summary: Mapping[str, Any], modality: str = "image") -> list[str]:
    """The unlearned model's ToW, ToW-MIA and FA/RA/TA (a text run's canary exposure and perplexity too), then
    how trustworthy the exact memorization scores are: the planted examples' AUROC and the scores' stability."""
    accuracies = [k for k in UNLEARNED if k not in SCORES]
    lines = ["Headline (metrics/summary.json)",
             _row("unlearned model", f"{_values(summary, SCORES)}   (1 = as the retrain oracle)"),
             _row("", f"{_values(summary, accuracies)}   ({ACCURACY[modality]} on the forget, retain and test sets)")]
    text = [f"forget-set canary exposure {number(summary['forget_exposure'], '.2f')} bits"
            if "forget_exposure" in summary else "",
            f"validation perplexity {number(summary['validation_ppl'], '.2f')}" if "validation_ppl" in summary else ""]
    if any(text):
        lines.append(_row("", "   ".join(t for t in text if t)))
    lines += [_row("exact scores", f"{PLANTED[modality]} {number(summary.get('planted_noise_auroc'))} (mem), "
                   f"{number(summary.get('planted_noise_auroc_prob'))} (mem_prob)   (1 = the planted ones rank first)"),
              _row("", f"stability {number(summary.get('score_stability'))}: Spearman between the scores of two "
                   f"halves of the {number(summary.get('num_models'), 'd')} subset models")]
    return lines


def effect_text(row: Mapping[str, Any]) -> tuple[str, str]:
    """(effect, 95% CI) as claims.md writes them: a cost factor (no seeds) as ``<n>x`` without a CI."""
    effect, low, high = row["effect"], row["ci_low"], row["ci_high"]
    if not row["n_seeds"]:
        return (f"{effect:.0f}x" if math.isfinite(effect) else ""), ""
    ci = f"[{low:+.3f}, {high:+.3f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return (f"{effect:+.3f}" if math.isfinite(effect) else "n/a"), ci


def claims_lines(claims: pd.DataFrame) -> list[str]:
    """One line per claim: verdict, name, effect, 95% CI, seeds; then the verdicts counted."""
    rows = claims.to_dict("records")
    counts = pd.Series([r["verdict"] for r in rows], dtype=object).value_counts()
    lines = ["Claims (results/claims.csv): " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
             + f", of {len(rows)}"]
    verdict_width = max((len(str(r["verdict"])) for r in rows), default=0)
    tail_width = 8 + 2 + 16 + 2 + 9  # effect, CI, "n seeds"
    name_width = min(max((len(str(r["claim"])) for r in rows), default=0),
                     WIDTH - 2 - verdict_width - 2 - 2 - tail_width)
    for row in rows:
        effect, ci = effect_text(row)
        name = str(row["claim"])
        name = name if len(name) <= name_width else name[: name_width - 3] + "..."
        seeds = f"{int(row['n_seeds'])} seeds" if row["n_seeds"] else ""
        lines.append(f"  {row['verdict']:<{verdict_width}}  {name:<{name_width}}  {effect:>8}  {ci:<16}  "
                     f"{seeds}".rstrip())
    return lines


def next_lines(runs_link: str = "", modality: str = "image") -> list[str]:
    """Where to look next: the MLflow runs (``runs_link``: their table in the UI, tracking.py ``runs_link``),
    the DVC plots, the claims report, the most memorized examples (an image run's)."""
    steps = [("make ui", f"MLflow's runs, their params, metrics and models: {runs_link or 'the runs table'}"),
             ("dvc plots show", "every stage's plots in one HTML page"),
             ("results/claims.md", "each claim's finding, comparison, effect and CI")]
    steps.append(("memunlearn top", "the most memorized training examples, labels and planted noise")
                 if modality == "image" else
                 ("results/evaluation.csv", "exposure, perplexity and accuracy of every model"))
    width = max(len(command) for command, _ in steps)
    return ["Where to look next"] + [f"  {command:<{width}}  {what}" for command, what in steps]


def run_report(summary: Mapping[str, Any], claims: pd.DataFrame, runs_link: str = "",
               modality: str = "image") -> str:
    """The whole report: headline, claims, next steps; blank lines between."""
    parts = [headline_lines(summary, modality), claims_lines(claims), next_lines(runs_link, modality)]
    return "\n\n".join("\n".join(part) for part in parts)
