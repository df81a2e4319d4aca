"""``--executor ray``: the build's shards as Ray tasks (optional: ``pip install -r requirements-ray.txt``).

Each task runs ``extract.run_shard`` for shard i of n in its own worker process (one GPU per task
where the cluster has GPUs), writing its parts beside ``--out`` exactly as ``--shard i/n`` would;
the driver then computes metrics and maps and publishes, as ``merge`` does. So every node must see
``--out``'s folder and the corpus at the same paths (a shared filesystem), and the code (this
checkout on the nodes, or a Ray ``working_dir``).

``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` when set, else starts a local one (tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from precompute.config import REPO_ROOT, BuildConfig, BuildError, Job, config_from_json, \
    load_corpus, plan_jobs
from precompute.extract import run_shard

log = logging.getLogger("precompute")


def run_ray_shards(config: BuildConfig, jobs: Sequence[Job], n_shards: int | None = None, *,
                   command_line: Sequence[str] | None = None) -> tuple[int, int]:
    """Run every shard of ``jobs`` as a Ray task and wait; returns (parts computed, skipped)."""
    try:
        import ray
    except ImportError:
        raise BuildError("--executor ray needs Ray: pip install -r requirements-ray.txt") from None

    started = not ray.is_initialized()
    if started:
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local cluster: the workers import this checkout
            path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False,
                     log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n_langs = len(config.langs) if config.langs else None
        if n_shards is None:
            n_shards = max(1, gpus or int(resources.get("CPU", 1)))
            if n_langs:
                n_shards = min(n_shards, n_langs)
        log.info("ray: %d shards on %s (%d GPUs)", n_shards,
                 os.environ.get("RAY_ADDRESS") or "a local cluster", gpus)
        task = ray.remote(_shard_task).options(num_gpus=1 if gpus else 0, num_cpus=1,
                                               max_retries=0)
        payload = _absolute(config).to_json()  # workers may start elsewhere
        refs = [task.remote(payload, i, n_shards, [j.run_id for j in jobs],
                            list(command_line) if command_line is not None else None)
                for i in range(n_shards)]
        results = ray.get(refs)
    finally:
        if started:
            ray.shutdown()
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _absolute(config: BuildConfig) -> BuildConfig:
    corpus = config.corpus if config.corpus == "bundled" else str(Path(config.corpus).resolve())
    speech_cache = Path(config.speech_cache).resolve() if config.speech_cache else None
    return dataclasses.replace(config, out=Path(config.out).resolve(), corpus=corpus,
                               speech_cache=speech_cache)


def _shard_task(config_json: dict, index: int, count: int, run_ids: list[str],
                command_line: list[str] | None) -> tuple[int, int]:
    """In a Ray worker: shard ``index`` of ``count`` of the jobs named ``run_ids``."""
    logging.getLogger("precompute").setLevel(logging.INFO)
    config = config_from_json(config_json)
    corpus = load_corpus(config)
    jobs = [j for j in plan_jobs(config, corpus) if j.run_id in run_ids]
    if len(jobs) != len(run_ids):
        raise BuildError(f"ray shard {index}/{count}: the corpus seen from this node plans other "
                         f"runs ({[j.run_id for j in jobs]}) than the driver ({run_ids}); do all "
                         "nodes see the same corpus at the same path?")
    return run_shard(config, corpus, jobs, (index, count), command_line=command_line)

