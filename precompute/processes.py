"""Metric groups in worker processes (``--workers``), for ``build``/``merge`` and ``metrics`` alike.

Most of a metric group's time is many small tensor operations per pair, which one process does not
spread over the cores; so groups go to ``workers`` spawned processes, each with its share of the CPU
threads. Each process reads its own inputs (from the run's parts or the store), so the rows are the
same whoever computes them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm


def in_processes(function: Callable[..., Any], calls: Sequence[tuple], workers: int, *,
                 desc: str) -> list[Any]:
    """``function(*call)`` for every call, in ``workers`` processes; the results in call order.

    ``function`` must be importable by name (a module-level function): the processes are spawned.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=limit_threads, initargs=(threads,)) as pool:
        futures = [pool.submit(function, *call) for call in calls]
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="group"):
            future.result()
    return [future.result() for future in futures]


def limit_threads(threads: int) -> None:
    """A worker's torch threads (its share of the cores)."""
    import torch

    torch.set_num_threads(threads)
