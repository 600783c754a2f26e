"""Stage `figures`: the study's pictures from the stages' tables (memunlearn.evaluation.figures), as DVC plots
and MLflow artifacts, the modality's set (image: memorized_examples, evaluation, rum_compare_tow,
forgetting_quality_epsilon; text: memorization_by_copies, evaluation, exposure, first_epoch_ga_ablations and the last
two). It only draws, so editing a figure reruns nothing else.
"""
from _common import MEMORIZE_DIR, PREPARED, RESULTS_DIR, load_params, stage, track

from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord

FIGURES = RESULTS_DIR / "plots/figures"


@stage
def main() -> None:
    modality = load_modality(load_params("modality")["modality"], PREPARED)
    paths = modality.figures(modality.load(PREPARED), RESULTS_DIR, MEMORIZE_DIR, FIGURES)
    track(StageRecord("figures", artifacts=paths))


if __name__ == "__main__":
    main()
