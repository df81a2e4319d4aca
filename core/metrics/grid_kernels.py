"""Tensor operations the batched grid is built from: stable top-k with tie detection, multiset
keys of neighbour lists, gathered submatrices, descending eigendecomposition, column padding, the
HSIC formula of a weighted sample, and the chunk size that keeps a batch within a memory budget.
"""

from __future__ import annotations

import math

import torch

_TIE_WINDOW = 4  # extra neighbours looked at to see whether a tie at the k-th neighbour matters


def chunk_size(per_item_bytes: int, budget: int = 256 * 2**20) -> int:
    """How many items of a batch to process at once to stay within ``budget`` bytes."""
    return max(1, budget // max(1, per_item_bytes))


def top_k_stable(similarity: torch.Tensor, k: int,
                 ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the k largest entries per row, ties going to the lower index (as a stable sort),
    and which rows had a tie at the k-th entry that decided what was chosen.

    ``similarity`` (..., rows, m) holds -inf where a column is excluded. ``ids`` (..., m) names the
    sentence behind each column: a tie only among copies of one sentence changes nothing, so only ties
    mixing sentences fall back to a stable sort.
    """
    width = min(k + _TIE_WINDOW, similarity.shape[-1])
    values, indices = torch.topk(similarity, width, dim=-1)
    if width == k:
        return indices, torch.zeros(indices.shape[:-1], dtype=torch.bool, device=indices.device)
    at_boundary = values == values[..., k - 1: k]
    tied = at_boundary[..., k]
    if ids is not None:
        column_ids = torch.gather(ids.unsqueeze(-2).expand(*indices.shape[:-1], ids.shape[-1]), -1,
                                  indices)
        big = torch.iinfo(column_ids.dtype).max
        lowest = torch.where(at_boundary, column_ids, big).amin(-1)
        highest = torch.where(at_boundary, column_ids, -1).amax(-1)
        group_may_continue = at_boundary[..., -1] & (width < similarity.shape[-1])
        tied &= (lowest != highest) | group_may_continue
    indices = indices[..., :k].clone()
    if tied.any():
        indices[tied] = torch.sort(-similarity[tied], dim=-1, stable=True).indices[..., :k]
    return indices, tied


def multiset_keys(ids: torch.Tensor) -> torch.Tensor:
    """id * k + how many earlier entries of the list hold the same id: equal keys = shared entries."""
    k = ids.shape[-1]
    earlier = torch.ones(k, k, dtype=torch.bool, device=ids.device).tril(-1)
    repeat = ((ids.unsqueeze(-1) == ids.unsqueeze(-2)) & earlier).sum(-1)
    return ids * k + repeat


def shared_count(keys_a: torch.Tensor, keys_b: torch.Tensor) -> torch.Tensor:
    """How many entries two lists of multiset keys share (the overlap of two neighbour lists)."""
    return (keys_a.unsqueeze(-1) == keys_b.unsqueeze(-2)).sum((-1, -2))


def submatrices(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """matrix[rows_b][:, rows_b] for every row set in ``rows`` (..., m): (..., m, m)."""
    size = matrix.shape[-1]
    flat = (rows.unsqueeze(-1) * size + rows.unsqueeze(-2)).reshape(-1)
    return matrix.reshape(-1).index_select(0, flat).view(*rows.shape, rows.shape[-1])


def eigh_descending(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clipped at 0) and eigenvectors of a symmetric matrix, largest first."""
    values, vectors = torch.linalg.eigh(matrix)
    return values.flip(-1).clamp_min(0.0), vectors.flip(-1)


def pad_columns(matrix: torch.Tensor, width: int) -> torch.Tensor:
    """The first ``width`` columns, zero-padded when there are fewer."""
    if matrix.shape[-1] >= width:
        return matrix[..., :width]
    return torch.nn.functional.pad(matrix, (0, width - matrix.shape[-1]))


def hsic(q: torch.Tensor, w: torch.Tensor, kw_x: torch.Tensor, kw_y: torch.Tensor,
         diag_x: torch.Tensor, diag_y: torch.Tensor, s_x: torch.Tensor, s_y: torch.Tensor,
         d_x: torch.Tensor, d_y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Biased HSIC (tr K H L H) and n(n-3) x Song's unbiased HSIC of a (weighted) sample.

    With w the count of each sentence: q = w^T (K∘L) w, kw = K w, s = w^T K w, d = sum(w diag K).
    """
    r = (w * kw_x * kw_y).sum(-1)
    r_tilde = (w * (kw_x - diag_x) * (kw_y - diag_y)).sum(-1)
    d_xy = (w * diag_x * diag_y).sum(-1)
    biased = q - 2 * r / n + s_x * s_y / n**2
    if n < 4:
        return biased, torch.full_like(biased, math.nan)
    unbiased = ((q - d_xy) + (s_x - d_x) * (s_y - d_y) / ((n - 1) * (n - 2))
                - 2 * r_tilde / (n - 2))
    return biased, unbiased
