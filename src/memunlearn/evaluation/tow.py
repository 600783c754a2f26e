"""Tug of War (Zhao et al., RUM paper; docs/methods.md §6).

ToW = (1 - |FA - FA_rt|) * (1 - |RA - RA_rt|) * (1 - |TA - TA_rt|), with
accuracies in [0, 1] and ``rt`` the retrain oracle on the same forget set.
ToW-MIA replaces the forget term by (1 - |MIA - MIA_rt|).
"""
from __future__ import annotations

from typing import Mapping


def tow(unlearned: Mapping[str, float], oracle: Mapping[str, float], forget_key: str = "forget_acc") -> float:
    terms = [(forget_key, forget_key), ("retain_acc", "retain_acc"), ("test_acc", "test_acc")]
    value = 1.0
    for key_u, key_rt in terms:
        value *= 1.0 - abs(unlearned[key_u] - oracle[key_rt])
    return value


def tow_mia(unlearned: Mapping[str, float], oracle: Mapping[str, float]) -> float:
    return tow(unlearned, oracle, forget_key="mia")
