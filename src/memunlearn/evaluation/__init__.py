"""Accuracies, ToW, MIA and report tables (docs/methods.md §6)."""
from .mia import MIA_FEATURES, svc_mia
from .report import (EvaluateConfig, ModelOutputs, compare, model_metrics, model_outputs, output_metrics,
                     score_against_oracle)
from .tow import tow, tow_mia

__all__ = ["MIA_FEATURES", "svc_mia", "EvaluateConfig", "ModelOutputs", "compare", "model_metrics", "model_outputs",
           "output_metrics", "score_against_oracle", "tow", "tow_mia"]
