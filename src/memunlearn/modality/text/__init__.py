"""The text modality (seed 003): a corpus of ``TEXT_CORPORA`` cut into fixed-length sequences with planted
canaries, a language model of ``LM_MODELS``.

applies.py registers it and says what applies to it; the stage implementations are this package's other
modules (prepare.py ... evaluate.py), one per DVC stage, each imported by its stage script only. The summary
stage needs none: the evaluate and memorize stages write the headline's keys (forget/retain/test accuracy as
next-token accuracy; the canaries as the planted examples).
"""
from .applies import KINDS, METHODS, PROXIES, SCORES, TEXT, problems  # noqa: F401  (importing registers it)

__all__ = ["KINDS", "METHODS", "PROXIES", "SCORES", "TEXT", "problems"]
