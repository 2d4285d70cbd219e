"""Networks, flow matching, fine-tuning objectives and the Policy API."""

from fmpolicy.policy.api import Policy, load_policy

__all__ = ["Policy", "load_policy"]
