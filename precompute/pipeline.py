"""The build: corpus -> speech -> transcripts -> pooled activations -> metrics -> projections -> store.

One store holds many runs (one per model x configuration), built in stages, each in its own module;
this one only says in which order they run:

0. **Plan and check** (``precompute.config``, ``precompute.checks``): the runs the options make
   (a run's id is a hash of everything that can change its rows, so a rerun finds what it had
   finished), refusing bad input (unknown model or language, empty or misaligned corpus,
   unreadable audio, unreadable or other-schema store) before anything is written.
1. **Parts** (``precompute.extract.run_shard``): per run and language, items, token counts,
   transcripts and each component's pooled states as Parquet parts under ``<out>.parts/<run_id>/``
   (``precompute.staging``). ``--shard I/N`` computes only some languages (any scheduler; all
   shards name the same ``--out``); ``--executor ray`` runs the N shards as Ray tasks
   (``precompute.executors``).
2. **Metrics and maps** (``precompute.measure_parts``, measuring with ``precompute.measure``): one
   part per metric group and per UMAP map.
3. **Publish** (``precompute.publish``): the run added from its parts to a copy of the store, which
   replaces ``<out>`` atomically; then the run's parts are removed.

Each stage ends with one log line, its wall time and what it produced (``precompute.stagelog``).

Items are shared by all runs of a store; a run whose corpus holds other sentences under the same
ids is refused. What depends on the model is stored per run (``run_items``): the transcript and
CER of each clip by every model that can transcribe, the token count of each text by the run's own
tokenizer. Each run's config says which text length its length baseline used
(``text_length_unit``: tokens or characters), which pooling it used (``pooling``, also a column of
every metric row) and what each component is fed (``components``: conditioning, spaces).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.models.base import ModelAdapter
from precompute.checks import check_corpus, check_items_fit, check_models, check_out_store, \
    complete_runs
from precompute.config import BuildConfig, BuildError, load_corpus, plan_jobs
from precompute.executors import run_ray_shards
from precompute.extract import extracted, missing_parts, run_shard
from precompute.measure_parts import measure_into_parts
from precompute.publish import publish_job
from precompute.stagelog import Stage, counted
from precompute.staging import Workspace

log = logging.getLogger("precompute")


@dataclass
class BuildResult:
    """What a build or merge did, run by run."""

    added: list[str] = field(default_factory=list)      # runs published into the store now
    complete: list[str] = field(default_factory=list)   # runs the store already held: no-op
    pending: list[str] = field(default_factory=list)    # runs left for `merge` (with --shard)
    shard: tuple[int, int] | None = None                # set when only one shard ran
    units_done: int = 0                                 # parts computed by this process
    units_skipped: int = 0                              # parts found done (resumed)

    @property
    def run_ids(self) -> list[str]:
        return [*self.complete, *self.added]


def build(config: BuildConfig, *, load_model: Callable[..., ModelAdapter] | None = None,
          command_line: Sequence[str] | None = None, shard: tuple[int, int] | None = None,
          executor: str = "local", n_shards: int | None = None) -> BuildResult:
    """Add one run per model to the store at ``config.out`` (created when absent).

    Runs the store already holds complete are left alone (a no-op, reported in ``complete``).
    Finished parts persist in ``<out>.parts/`` (see ``precompute.staging``), so rerunning the same
    command after a crash or kill resumes. ``shard=(i, n)`` computes only shard i's languages and
    publishes nothing (``merge`` does, once every shard is done); ``executor="ray"`` runs
    ``n_shards`` shards as Ray tasks and then publishes.
    """
    out = Path(config.out)
    result = BuildResult(shard=shard)
    with Stage("0 plan and check") as stage:
        check_out_store(out)
        corpus = load_corpus(config)
        check_corpus(corpus, config)
        if load_model is None:
            check_models(config.models)
        jobs = plan_jobs(config, corpus)
        complete = complete_runs(out)
        if any(job.run_id not in complete for job in jobs):
            check_items_fit(out, corpus)
        pending = []
        for job in jobs:
            if job.run_id in complete:
                log.info("run %s (%s) is already complete in %s: nothing to do", job.run_id,
                         job.model, out)
                result.complete.append(job.run_id)
                Workspace(out).remove_job(job.run_id)  # a publish killed before cleaning up
            else:
                pending.append(job)
        stage.produced = (f"corpus {corpus.name}: {counted(len(corpus.langs), 'language')} x "
                          f"{counted(len(corpus.sentence_ids), 'sentence')} ({corpus.source}); "
                          f"{counted(len(pending), 'run')} to build, "
                          f"{len(result.complete)} already complete")
    if not pending:
        return result
    shard_langs = [lang for i, lang in enumerate(corpus.langs)
                   if shard is None or i % shard[1] == shard[0]]
    with Stage("1 extract" + (f" (shard {shard[0]}/{shard[1]})" if shard else "")) as stage:
        if executor == "ray":
            done, skipped = run_ray_shards(config, pending, n_shards, command_line=command_line)
        else:
            done, skipped = run_shard(config, corpus, pending, shard or (0, 1),
                                      load_model=load_model, command_line=command_line)
        made = extracted(Workspace(out), [job.run_id for job in pending], shard_langs)
        stage.produced = f"{made} ({done} parts computed, {skipped} already done)"
    result.units_done, result.units_skipped = done, skipped
    if shard is not None:
        result.pending = [job.run_id for job in pending]
        return result
    for job in pending:
        if finish_job(out, job.run_id, workers=config.workers) == "added":
            result.added.append(job.run_id)
        else:
            result.complete.append(job.run_id)
    return result


def merge(out: Path, workers: int = 1) -> BuildResult:
    """Publish every run whose parts all shards have finished (``python -m precompute merge``)."""
    out = Path(out)
    check_out_store(out)
    workspace = Workspace(out)
    run_ids = workspace.job_ids()
    if not run_ids:
        raise BuildError(f"nothing to merge: no {workspace.root} with shard outputs; run "
                         "`python -m precompute build ... --out {out} --shard I/N` for every "
                         "shard first".replace("{out}", str(out)))
    missing = {run_id: missing_parts(workspace, workspace.read_job(run_id)) for run_id in run_ids}
    unfinished = {run_id: parts for run_id, parts in missing.items() if parts}
    if unfinished:
        run_id, parts = next(iter(unfinished.items()))
        raise BuildError(f"cannot merge {out}: run {run_id} lacks {len(parts)} parts (e.g. "
                         f"{parts[0]}); finish every `--shard I/N` of its build, then merge again")
    result = BuildResult()
    for run_id in run_ids:
        (result.added if finish_job(out, run_id, workers=workers) == "added"
         else result.complete).append(run_id)
    return result


def finish_job(out: Path, run_id: str, *, workers: int = 1) -> str:
    """Metrics and maps of a run whose stage-1 parts are all there (each group a part, resumable),
    then publish it into the store. Returns "added", or "complete" when the store had it.

    ``workers`` > 1 computes the metric groups in that many processes (``precompute.processes``).
    """
    workspace = Workspace(out)
    plan = workspace.read_job(run_id)
    if plan is None:
        raise BuildError(f"no parts of run {run_id} in {workspace.root}; build it first")
    missing = missing_parts(workspace, plan)
    if missing:
        raise BuildError(f"run {run_id}: {len(missing)} parts are missing (e.g. {missing[0]}); "
                         "run every shard of the build, then `python -m precompute merge`")
    with Stage(f"2 measure {run_id}") as stage:
        stage.produced = measure_into_parts(out, workspace, plan, workers=workers).summary()
    with Stage(f"3 publish {run_id}") as stage:
        outcome = publish_job(out, workspace, plan)
        stage.produced = (f"{out} ({out.stat().st_size / 2**20:.1f} MiB)" if outcome == "added"
                          else f"nothing: {out} already held the run")
    return outcome
