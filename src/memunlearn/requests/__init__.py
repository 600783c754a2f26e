"""Deletion requests (docs/requests.md): ids in, a verified, registered model version out, with a ledger."""
from .config import RequestsConfig
from .ids import RequestError
from .service import Outcome, Project, RequestRejected, apply_policy, forget, retrain, verify_lineage

__all__ = ["Outcome", "Project", "RequestError", "RequestRejected", "RequestsConfig", "apply_policy", "forget",
           "retrain", "verify_lineage"]
