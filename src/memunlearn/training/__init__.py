"""Training and inference loops, learning-event recorder, checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
from .curvature import CurvatureRecorder
from .events import EVENT_COLUMNS, LearningEventRecorder
from .first_epoch_grads import FirstEpochGradRecorder, FirstEpochGrads, load_first_epoch_grads, save_first_epoch_grads
from .loop import accuracy, batch_positions, embed, fit, predict_proba, sgd, to_device, true_class_prob
from .recipe import RecordConfig, TrainConfig

__all__ = [
    "CurvatureRecorder", "FirstEpochGradRecorder", "FirstEpochGrads", "load_first_epoch_grads",
    "save_first_epoch_grads", "RecordConfig", "load_checkpoint", "save_checkpoint", "EVENT_COLUMNS", "LearningEventRecorder", "accuracy",
    "batch_positions", "embed", "fit", "predict_proba", "sgd", "to_device", "true_class_prob", "TrainConfig",
]
