"""Similarity between sets of sentence representations, with the baselines needed to read it.

``similarity`` holds the reference metrics (numpy, one pair at a time), ``nulls`` the reference
shuffled-pairs baseline, bootstrap CI and length controls, ``joint`` the aggregates over language
pairs that resample sentences jointly, and ``grid`` computes all of them for whole grids of pairs in
batches (torch, CPU or CUDA), equal to the references to 1e-6.

The package imports none of them: callers import the submodule they need, so reading a name
constant (``similarity.NEEDS_SHARED_SPACE``) never loads torch, which only ``grid`` needs.
"""
