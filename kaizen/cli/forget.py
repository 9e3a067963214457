"""`kaizen forget --tenant T --user U`: forget one user (see kaizen.service.forget)."""

from __future__ import annotations

from kaizen.service.forget import add_parser as register

__all__ = ["register"]
