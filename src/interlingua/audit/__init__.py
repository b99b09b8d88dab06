"""The disagreement audit: where a concept of A and its translation into B part ways, and why."""

from interlingua.audit.audit import AuditConfig, audit
from interlingua.audit.results import Audit, AuditInput, Explanation, Group

__all__ = ["Audit", "AuditConfig", "AuditInput", "Explanation", "Group", "audit"]
