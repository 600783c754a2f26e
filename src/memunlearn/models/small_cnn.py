"""Moved to modality/image/small_cnn.py. Kept so a model that MLflow pickled before the move (its class path named this
module) still loads; nothing in the project imports it."""
from ..modality.image.small_cnn import *  # noqa: F401,F403
