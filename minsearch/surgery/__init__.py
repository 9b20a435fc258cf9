"""Surgery: apply a genome to a model, in place, with a report of every change."""

from minsearch.surgery.apply import Change, SurgeryReport, apply_
from minsearch.surgery.genome import Genome

__all__ = ["Change", "Genome", "SurgeryReport", "apply_"]
