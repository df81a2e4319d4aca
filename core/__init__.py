"""Crossmodal Lens core: everything the precompute pipeline and the dashboard share.

Each module has one concern: ``models`` (adapters + registry), ``corpus``, ``audio``, ``pooling``,
``metrics``, ``projection``, ``store`` (the only place that speaks SQL), ``findings``.
"""

__version__ = "0.1.0"
