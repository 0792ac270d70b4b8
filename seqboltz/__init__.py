"""seqboltz: Boltzmann machines for real-valued, sequential and structured data.

The base package imports nothing heavy; torch-based parts live in submodules
(:mod:`seqboltz.functional`, :mod:`seqboltz.models`, :mod:`seqboltz.training`,
:mod:`seqboltz.eval`, :mod:`seqboltz.data`).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
