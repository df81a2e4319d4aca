"""The permutations and bootstrap resamples every pair with the same n_samples shares.

Drawn once per n_samples with ``nulls.permutation_indices`` / ``nulls.bootstrap_indices`` and the
run's seed, so the reference per-pair functions given the same index sets reproduce the grid's
numbers; a resample is also kept as counts per sentence, which the batched metrics weight by.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.metrics import nulls


@dataclass
class Resampling:
    """Permutations and bootstrap resamples for one n_samples, as the reference draws them."""

    permutations: torch.Tensor  # (P, n) long
    inverse_permutations: torch.Tensor  # (P, n) long
    resamples: torch.Tensor  # (B, n) long
    counts: torch.Tensor  # (B, n) float64: how often each sentence is drawn

    @classmethod
    def draw(cls, n: int, n_permutations: int, n_bootstrap: int, seed: int,
             device: torch.device) -> Resampling:
        permutations = torch.as_tensor(nulls.permutation_indices(n, n_permutations, seed), device=device)
        resamples = torch.as_tensor(nulls.bootstrap_indices(n, n_bootstrap, seed), device=device)
        counts = torch.zeros(len(resamples), n, dtype=torch.float64, device=device)
        counts.scatter_add_(1, resamples, torch.ones_like(resamples, dtype=torch.float64))
        return cls(permutations, torch.argsort(permutations, dim=1), resamples, counts)
