"""What one side (n_samples, dims) of the grid contributes to any pair it appears in.

Centring, Gram matrix, singular directions, neighbour lists, HSIC terms and their per-resample
versions depend on one side only, so a ``Side`` computes each on first use and keeps it for every
pair and metric that needs it. A bootstrap resample is a vector of counts w over the sentences: CKA
terms are quadratic forms in w, and a resample's singular directions are the eigenvectors of the
weighted Gram matrix sqrt(w_i w_j) (x_i - m_w)·(x_j - m_w) over the sentences drawn at least once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.metrics.grid_kernels import (chunk_size, eigh_descending, hsic, multiset_keys,
                                       pad_columns, submatrices, top_k_stable)
from core.metrics.grid_resampling import Resampling
from core.metrics.similarity import RANKING_DECIMALS, k_for_variance


@dataclass
class Neighbours:
    """k nearest rows per row, plus the rows whose k-th neighbour was a tie and their similarities:
    in a shuffled copy of the side those ties break by the new row order, so they are redone there."""

    indices: torch.Tensor  # (n, k)
    tied_rows: torch.Tensor  # (t,)
    tied_similarity: torch.Tensor  # (t, n), -inf on the row itself

    def permuted(self, permutations: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """(P, n, k) neighbours in each permuted copy (row i of copy p is row p_i), renumbered."""
        n, k = self.indices.shape
        # Row i of the copy is row p_i here; its neighbours, renumbered into the copy, are p^-1(nbrs).
        result = torch.gather(inverse.unsqueeze(1).expand(-1, n, -1), 2, self.indices[permutations])
        if len(self.tied_rows) and len(permutations):
            reordered = self.tied_similarity[:, permutations]  # (t, P, n) in each copy's row order
            chosen = torch.sort(-reordered, dim=-1, stable=True).indices[..., :k]
            copies = torch.arange(len(permutations), device=result.device)
            positions = inverse[:, self.tied_rows]  # (P, t): where each tied row went
            result[copies.unsqueeze(1), positions] = chosen.transpose(0, 1)
        return result


class Side:
    """What one side (n_samples, dims) contributes to any pair, computed on first use and kept."""

    def __init__(self, x: torch.Tensor, resampling: Resampling | None = None,
                 svcca_requests: frozenset = frozenset()):
        self.x = x
        self.n, self.dims = x.shape
        self.resampling = resampling
        self.svcca_requests = svcca_requests  # ("k", k) / ("variance", v) pairs this side will need
        self._memo: dict = {}
        self._size: int | None = None

    def _cached(self, key, build: Callable):
        if key not in self._memo:
            self._memo[key] = build()
            self._size = None
        return self._memo[key]

    def nbytes(self) -> int:
        """Memory held by this side's tensors (recounted only after something new was cached)."""
        def size(value) -> int:
            if isinstance(value, torch.Tensor):
                return value.numel() * value.element_size()
            if isinstance(value, (tuple, list)):
                return sum(size(v) for v in value)
            if isinstance(value, dict):
                return sum(size(v) for v in value.values())
            if hasattr(value, "__dataclass_fields__"):
                return sum(size(getattr(value, name)) for name in value.__dataclass_fields__)
            return 0
        if self._size is None:
            self._size = size(self.x) + sum(size(v) for v in self._memo.values())
        return self._size

    # ---- centred data, Gram matrix, spectrum
    @property
    def centred(self) -> torch.Tensor:
        return self._cached("centred", lambda: self.x - self.x.mean(0, keepdim=True))

    @property
    def gram(self) -> torch.Tensor:
        return self._cached("gram", lambda: self.centred @ self.centred.T)

    def spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(eigenvalues of the centred Gram matrix = squared singular values, left singular vectors)."""
        def build():
            if self.dims < self.n:
                u, s, _ = torch.linalg.svd(self.centred, full_matrices=False)
                return s**2, u
            return eigh_descending(self.gram)
        return self._cached("spectrum", build)

    # ---- cosine geometry
    @property
    def unit(self) -> torch.Tensor | None:
        def build():
            norms = self.x.norm(dim=1, keepdim=True)
            return None if bool((norms == 0).any()) else self.x / norms
        return self._cached("unit", build)

    @property
    def cosine(self) -> torch.Tensor:
        """Cosine similarity between rows, -inf on the diagonal (a row is not its own neighbour)."""
        def build():
            similarity = torch.round(self.unit @ self.unit.T, decimals=RANKING_DECIMALS)
            return similarity.fill_diagonal_(-math.inf)
        return self._cached("cosine", build)

    def neighbours(self, k: int) -> Neighbours | None:
        """Each row's k cosine-nearest rows, self excluded; None where k is not possible."""
        def build():
            if self.unit is None or not 1 <= k <= self.n - 1:
                return None
            similarity = self.cosine
            indices, tied = top_k_stable(similarity, k)
            tied_rows = torch.nonzero(tied).squeeze(1)
            return Neighbours(indices, tied_rows, similarity[tied_rows])
        return self._cached(("neighbours", k), build)

    def boot_neighbour_keys(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per resample and sentence, the multiset keys of its k neighbours (copies of other sentences
        count, its own never), and which resamples leave every sentence k others to choose from.

        A sentence's neighbours in a resample are the first k drawn copies along its similarity
        ranking, so only a short prefix of the ranking is needed; resamples where that prefix holds
        too few draws, or where equal similarities would be ordered by resample position (identical
        vectors), go through the exact per-resample computation. Call only when ``neighbours(k)``
        exists.
        """
        def build():
            counts = self.resampling.counts
            valid = (self.n - counts.amax(1)) >= k
            similarity = self.cosine
            prefix = min(self.n - 1, 3 * k + 16)
            values, order = torch.topk(similarity, min(prefix + 1, self.n), dim=1)
            if bool((values[:, 1:prefix + 1] == values[:, :prefix]).any()):
                return self._exact_boot_keys(similarity, k, torch.ones_like(valid)), valid
            order = order[:, :prefix]
            drawn = counts[:, order]  # (B, n, prefix): copies of each ranked neighbour
            reached = drawn.cumsum(-1)
            slots = torch.arange(k, device=counts.device, dtype=counts.dtype).expand(*drawn.shape[:2], k)
            entry = torch.searchsorted(reached, slots.contiguous(), right=True).clamp_max(prefix - 1)
            sentence = torch.gather(order.expand(len(counts), -1, -1), 2, entry)
            copy = slots - torch.gather(reached - drawn, 2, entry)
            keys = sentence * k + copy.long()
            short = (reached[..., -1] < k) & (counts > 0)
            redo = short.any(1)
            if bool(redo.any()):
                keys[redo] = self._exact_boot_keys(similarity, k, redo)[redo]
            return keys, valid
        return self._cached(("boot_neighbours", k), build)

    def _exact_boot_keys(self, similarity: torch.Tensor, k: int, which: torch.Tensor) -> torch.Tensor:
        """Neighbour keys per sentence by ranking each chosen resample's own rows (as the reference)."""
        resamples = self.resampling.resamples
        keys = torch.zeros(*resamples.shape, k, dtype=torch.long, device=self.x.device)
        chosen = torch.nonzero(which).squeeze(1)
        step = chunk_size(8 * self.n * self.n * 3)
        for start in range(0, len(chosen), step):
            index = chosen[start: start + step]
            drawn = resamples[index]
            block = submatrices(similarity, drawn)
            block.masked_fill_(drawn.unsqueeze(-1) == drawn.unsqueeze(-2), -math.inf)
            nearest, _ = top_k_stable(block, k, ids=drawn)
            sentence = torch.gather(drawn.unsqueeze(-2).expand(-1, self.n, -1), -1, nearest)
            # every copy of a sentence has the same neighbours: file them under the sentence
            keys[index.unsqueeze(1), drawn] = multiset_keys(sentence)
        return keys

    # ---- CKA terms
    def hsic_terms(self) -> dict[str, torch.Tensor]:
        """Row sums, diagonal, total and trace of the Gram matrix (weights all one)."""
        def build():
            gram = self.gram
            return {"kw": gram.sum(1), "diag": torch.diagonal(gram).clone(), "s": gram.sum(),
                    "d": torch.diagonal(gram).sum()}
        return self._cached("hsic_terms", build)

    def boot_hsic_terms(self) -> dict[str, torch.Tensor]:
        """The same per bootstrap resample, as quadratic forms in the resample counts."""
        def build():
            counts, gram = self.resampling.counts, self.gram
            kw = counts @ gram
            diag = torch.diagonal(gram).clone()
            return {"kw": kw, "diag": diag, "s": (counts * kw).sum(1), "d": counts @ diag,
                    "self": hsic(((counts @ (gram * gram)) * counts).sum(1), counts, kw, kw, diag, diag,
                                 (counts * kw).sum(1), (counts * kw).sum(1), counts @ diag,
                                 counts @ diag, self.n)}
        return self._cached("boot_hsic_terms", build)

    def self_hsic(self) -> tuple[torch.Tensor, torch.Tensor]:
        def build():
            terms = self.hsic_terms()
            ones = torch.ones(self.n, dtype=torch.float64, device=self.x.device)
            return hsic((self.gram * self.gram).sum(), ones, terms["kw"], terms["kw"], terms["diag"],
                        terms["diag"], terms["s"], terms["s"], terms["d"], terms["d"], self.n)
        return self._cached("self_hsic", build)

    # ---- SVCCA directions per resample
    def boot_directions(self) -> dict:
        """Per resample: eigenvalues (B, K), directions (B, n, K) scaled by sqrt(count) and zero for
        sentences not drawn, and k per request ("k", k) / ("variance", v)."""
        def build():
            counts = self.resampling.counts
            fixed = [value for mode, value in self.svcca_requests if mode == "k"]
            variances = [value for mode, value in self.svcca_requests if mode == "variance"]
            most_present = int((counts > 0).sum(1).max()) if len(counts) else 0
            use_covariance = self.dims < most_present
            size = self.dims if use_covariance else most_present
            chunks, chosen = [], {("variance", v): [] for v in variances}
            step = chunk_size(8 * size * size * 3)
            for start in range(0, len(counts), step):
                weights = counts[start: start + step]
                matrix = self._covariance(weights) if use_covariance else self._weighted_gram(weights)
                eigenvalues, ascending = torch.linalg.eigh(matrix)
                eigenvalues = eigenvalues.flip(-1).clamp_min(0.0)
                roots = eigenvalues.sqrt().cpu().numpy()
                for v in variances:
                    chosen[("variance", v)] += [k_for_variance(row, v) for row in roots]
                width = min(max(fixed + [k for ks in chosen.values() for k in ks] + [1]), size)
                basis = ascending[..., size - width:].flip(-1)
                directions = (self._covariance_directions(weights, eigenvalues, basis) if use_covariance
                              else self._gram_directions(weights, basis))
                chunks.append((eigenvalues[:, :width], directions))
            width = max(directions.shape[-1] for _, directions in chunks)
            return {
                "eigenvalues": torch.cat([pad_columns(e, width) for e, _ in chunks]),
                "vectors": torch.cat([pad_columns(d, width) for _, d in chunks]),
                "k": {**{request: torch.tensor(ks, device=self.x.device) for request, ks in chosen.items()},
                      **{("k", k): torch.full((len(counts),), k, device=self.x.device) for k in fixed}},
            }
        return self._cached("boot_directions", build)

    # A resample's centred Gram matrix is G_ij - c_i - c_j + mu (c = G w / n, mu = w^T G w / n^2) over
    # the sentences drawn; weighting it by sqrt(w_i w_j) gives the spectrum of the resample with its
    # copies merged. Each resample is gathered to the sentences it drew (padded with an all-zero dummy
    # row, index n), so a batch of them goes through one batched eigendecomposition.
    def _drawn_rows(self, weights: torch.Tensor) -> torch.Tensor:
        present = weights > 0
        width = int(present.sum(1).max())
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)[:, :width]
        return torch.where(torch.gather(present, 1, order), order, self.n)

    def _weighted_gram(self, weights: torch.Tensor) -> torch.Tensor:
        rows = self._drawn_rows(weights)
        padded_gram = torch.nn.functional.pad(self.gram, (0, 1, 0, 1))
        gram = submatrices(padded_gram, rows)
        w = torch.gather(torch.nn.functional.pad(weights, (0, 1)), 1, rows)
        row_means = (gram @ w.unsqueeze(-1)).squeeze(-1) / self.n
        grand = (w * row_means).sum(-1) / self.n
        centred = gram - row_means.unsqueeze(-1) - row_means.unsqueeze(-2) + grand[:, None, None]
        root = w.sqrt()
        return centred * root.unsqueeze(-1) * root.unsqueeze(-2)

    def _gram_directions(self, weights: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        rows = self._drawn_rows(weights)
        width = basis.shape[-1]
        full = torch.zeros(len(weights), self.n + 1, width, dtype=basis.dtype, device=basis.device)
        full.scatter_(1, rows.unsqueeze(-1).expand(-1, -1, width), basis)
        return full[:, :self.n]

    # With fewer features than drawn sentences, the d x d weighted covariance is the smaller problem.
    def _covariance(self, weights: torch.Tensor) -> torch.Tensor:
        mean = (weights @ self.centred) / self.n
        return (self.centred.T * weights.unsqueeze(1)) @ self.centred \
            - self.n * mean.unsqueeze(-1) * mean.unsqueeze(-2)

    def _covariance_directions(self, weights: torch.Tensor, eigenvalues: torch.Tensor,
                               basis: torch.Tensor) -> torch.Tensor:
        mean = (weights @ self.centred) / self.n
        values = eigenvalues[:, :basis.shape[-1]]
        scale = torch.where(values > 0, values.clamp_min(1e-300).rsqrt(), 0.0)
        projected = (self.centred.unsqueeze(0) - mean.unsqueeze(1)) @ basis
        return projected * scale.unsqueeze(1) * weights.sqrt().unsqueeze(-1)
