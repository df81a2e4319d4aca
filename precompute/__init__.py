"""Precompute: run models over a parallel corpus and write a DuckDB store (``python -m precompute``).

``pipeline`` says in which order the build's stages run (each in its own module: ``config``,
``checks``, ``extract``, ``measure_parts``/``measure``, ``publish``), ``recompute`` measures a
published run again, ``pairs`` says which sides are compared, ``cli`` is the command line.
"""
