"""Stage `figures`: the study's pictures from the stages' tables (memunlearn.evaluation.figures), as DVC plots
and MLflow artifacts. It only draws, so editing a figure reruns nothing else.

- memorized_examples.png: per class, the most and least memorized training images; planted noise in red;
- evaluation.png: FA/RA/TA/MIA of the original, unlearned and oracle models (`evaluate`);
- rum_compare_tow.png: ToW by variant of the `rum_compare` grid (`sweep_report`);
- forgetting_quality_epsilon.png: the per-example ε of forgetting quality (`forgetting_quality`).

A text run draws its own set (memunlearn.modality.text.figures).
"""
from _common import MEMORIZE_DIR, PREPARED, RESULTS_DIR, stage, track
from _modality import elsewhere

import numpy as np

from memunlearn.data import load_info, load_split
from memunlearn.evaluation.figures import (accuracy_bars, epsilon_histogram, memorized_examples, save,
                                           tow_by_variant)
from memunlearn.io import load_table
from memunlearn.labels import class_names
from memunlearn.memorization.ranking import ranked_examples
from memunlearn.modality.text import figures as text_stage
from memunlearn.tracking import StageRecord

FIGURES = RESULTS_DIR / "plots/figures"


@stage
def main() -> None:
    if elsewhere({}, {"text": text_stage.run}):
        return
    info = load_info(PREPARED / "meta.json")
    train = load_split(PREPARED / "train.npz")
    ranked = ranked_examples(load_table(MEMORIZE_DIR / "scores.parquet", "memorize"), train.example_ids,
                             train.labels, load_table(PREPARED / "label_noise.csv", "prepare"))
    position = {int(i): row for row, i in enumerate(train.example_ids.numpy())}
    ranked["position"] = ranked["example_id"].map(position)
    names = class_names(info.name, info.num_classes)
    summary = load_table(RESULTS_DIR / "sweep/summary.csv", "sweep_report")
    paths = [
        save(memorized_examples(np.asarray(train.images), ranked, names), FIGURES / "memorized_examples.png"),
        save(accuracy_bars(load_table(RESULTS_DIR / "evaluation.csv", "evaluate")), FIGURES / "evaluation.png"),
        save(tow_by_variant(summary, "rum_compare"), FIGURES / "rum_compare_tow.png"),
        save(epsilon_histogram(load_table(RESULTS_DIR / "forgetting_quality.csv", "forgetting_quality")),
             FIGURES / "forgetting_quality_epsilon.png"),
    ]
    track(StageRecord("figures", artifacts=paths))


if __name__ == "__main__":
    main()
