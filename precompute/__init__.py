"""Precompute: run models over a parallel corpus and write a DuckDB store (``python -m precompute``).

``pipeline`` holds the build stages, ``pairs`` which sides are compared, ``cli`` the command line.
"""
