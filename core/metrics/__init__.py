"""Similarity between sets of sentence representations, with the baselines needed to read it.

``similarity`` holds the reference metrics (numpy, one pair at a time), ``nulls`` the reference
shuffled-pairs baseline, bootstrap CI and length controls, and ``grid`` computes all of them for whole
grids of pairs in batches (torch, CPU or CUDA), equal to the references to 1e-6.
"""

from core.metrics.grid import DEFAULT_METRICS, MetricSpec, compute_grid
from core.metrics.similarity import (linear_cka, mutual_knn, paired_cosine, retrieval_accuracy,
                                     retrieval_p1, svcca, svcca_details)

__all__ = ["DEFAULT_METRICS", "MetricSpec", "compute_grid", "linear_cka", "mutual_knn",
           "paired_cosine", "retrieval_accuracy", "retrieval_p1", "svcca", "svcca_details"]
