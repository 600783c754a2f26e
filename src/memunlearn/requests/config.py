"""Params section ``requests`` (``RequestsConfig``): how a deletion request is planned, unlearned, verified and
when the lineage is retrained from scratch (docs/requests.md)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError
from ..memorization.proxies.base import PROXIES
from ..unlearning.base import STRATEGIES


REFERENCES = ("retrain", "class")  # gates (a), (c): what F is compared with (requests/gates.py)
FINAL_MODEL_COSTS = ("final_pass", "own")  # proxies a final model allows: no training-time records needed


@dataclass(frozen=True)
class RequestsConfig:
    """Defaults: RUM^F with NegGrad+, the combination the claims report supports on the embedded digits
    (RUM beats vanilla, budget-matched vanilla and shuffle; docs/requests.md says why)."""

    method: str = "neggrad_plus"  # a methods.<name> block
    strategy: str = "rum_f"  # a STRATEGIES name
    proxy: str = "final_confidence"  # the score of a version that is not the pipeline's original (final confidence/loss/margin, holdout retraining)
    retain_per_forget: int = 20  # unlearn against this many retain examples per forgotten one, drawn from D minus
    #                              every forgotten id (0: all of it); a request's cost then follows |F|, not |D|
    seed: int = 0
    device: str = "auto"
    audit_margin: float = 0.15  # gate (a): |AUC(F vs class-matched held-out) - 0.5| <= this
    heldout_per_example: int = 5  # gate (a), (c): reference held-out examples drawn per forgotten example
    reference: str = "retrain"  # gate (a), (c): held-out examples matched by the exact scores' out-of-subset accuracy
    #                             (F under a retrain; class-matched where the exact scores miss F) | class
    max_utility_drop: float = 0.02  # gate (b): test accuracy may drop at most this much
    max_overforgetting: float = 0.2  # gate (c): F accuracy >= held-out accuracy of F's classes minus this
    max_perplexity_increase: float = 0.05  # gate (b) on text: validation perplexity after / before - 1 <= this
    max_overforgetting_loss: float = 1.0  # gate (c) on text: F's mean loss - the reference's <= this (nats)
    exposure_alpha: float = 0.05  # gate (d) on text: a never-seen secret fails the exposure test with this chance
    retrain_after_fraction: float = 0.0  # retrain from scratch once this fraction of D is forgotten (0 = never)
    retrain_after_requests: int = 0  # ... or after this many accepted requests since the base (0 = never)
    retrain_after_failed_gate: bool = False  # ... or when a request fails a gate

    def validate(self) -> None:
        STRATEGIES.get(self.strategy)
        if self.reference not in REFERENCES:
            raise ConfigError(f"requests.reference: got {self.reference!r}; write one of: {', '.join(REFERENCES)}")
        final = [n for n, p in PROXIES.items() if p.cost_source in FINAL_MODEL_COSTS]
        if self.proxy not in final:
            raise ConfigError(f"requests.proxy: {self.proxy!r} is not a final-model proxy; choose one of: "
                              f"{', '.join(final)}")
        for name in ("audit_margin", "max_utility_drop", "max_overforgetting", "retrain_after_fraction",
                     "exposure_alpha"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"requests.{name}: got {value}; write a number in [0, 1]")
        for name in ("max_perplexity_increase", "max_overforgetting_loss"):
            if getattr(self, name) < 0:
                raise ConfigError(f"requests.{name}: got {getattr(self, name)}; write a number >= 0")
        for name in ("heldout_per_example",):
            if getattr(self, name) < 1:
                raise ConfigError(f"requests.{name}: got {getattr(self, name)}; write an integer >= 1")
        if self.retrain_after_requests < 0 or self.retain_per_forget < 0:
            raise ConfigError(f"requests.retrain_after_requests, requests.retain_per_forget: got "
                              f"{self.retrain_after_requests}, {self.retain_per_forget}; write 0 or a positive integer")
