"""Moved to modality/image/resnet.py. Kept so a model that MLflow pickled before the move (its class path named this
module) still loads; nothing in the project imports it."""
from ..modality.image.resnet import *  # noqa: F401,F403
