"""SCNS-Conductor: a batch job scheduler with Slurm's way of working."""

__version__ = "0.1.0"
