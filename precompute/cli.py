"""``python -m precompute build|merge|metrics|matrices|halves|report|info|export|item-sources|
migrate``: the command line over the build and the store."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from core.store import Store, StoreError
from core.store.export import FORMATS, write_batches
from core.store.tables import MATRIX_PAIRINGS, TABLES
from precompute.config import CORPUS_FORMATS, DEFAULT_OUT, BuildConfig, BuildError

log = logging.getLogger("precompute")

_store_option = click.option(
    "--store", "store_path", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
    help="DuckDB store file.")


def _shard(_ctx, _param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: need N >= 1 and 0 <= I < N")
    return index, count


def _csv(_ctx, _param, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    return parts or None


def _matrix_pairings(ctx, param, value: str | None) -> tuple[str, ...] | None:
    """``--per-language``: checked pairing names; 'none' keeps only the means (an empty tuple)."""
    pairings = _csv(ctx, param, value)
    if pairings is None or pairings == ("none",):
        return () if pairings else None
    unknown = [p for p in pairings if p not in MATRIX_PAIRINGS]
    if unknown:
        raise click.BadParameter(f"unknown pairing {', '.join(unknown)}; pairings: "
                                 f"{', '.join(MATRIX_PAIRINGS)}, or 'none'")
    return pairings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Crossmodal Lens precompute: run models over a parallel corpus into a DuckDB store."""
    _configure_logging(verbose)
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.command()
@click.option("--corpus", default="bundled", show_default=True,
              help="'bundled' (data/corpus), a corpus directory (or Parquet/Arrow file), "
              "hf:google/fleurs (fetches only --langs' --split into the hub cache), or "
              "hf:<owner>/<name> with --corpus-format table (a Parquet/Arrow dataset's --split). "
              "See docs/corpora.md.")
@click.option("--corpus-format", type=click.Choice(CORPUS_FORMATS), default="line", show_default=True,
              help="Layout of a corpus directory: line-aligned FLORES-style files, FLEURS "
              "(extracted, or as the hub stores it with tar.gz audio), or table (Parquet/Arrow "
              "files or a datasets save_to_disk folder).")
@click.option("--split", default="test", show_default=True,
              help="FLEURS split (test, dev = validation, train), or a table corpus's split.")
@click.option("--columns",
              help="Table corpus columns as key=column pairs: id, lang (or @path: from the "
              "file's folders), text, audio (empty: none, speech synthesised), rate (a column "
              "or a number, for audio stored as samples). Default id=id,lang=lang,text=text,"
              "audio=audio.")
@click.option("--corpus-config", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Table corpus config (JSON or TOML): a 'columns' table as --columns and a "
              "'langs' table mapping the corpus's language labels to FLORES-200 codes.")
@click.option("--bad-audio", type=click.Choice(["refuse", "skip"]), default="refuse",
              show_default=True,
              help="A recording that is absent or does not decode: refuse the build (naming the "
              "file and row), or leave its sentence out in every language (counted in the log "
              "and the run's config).")
@click.option("--suffix", default=".dev", show_default=True,
              help="Line-aligned files are <lang><suffix> (FLORES-200: .dev or .devtest).")
@click.option("--langs", callback=_csv, help="Comma-separated FLORES-200 codes (default: all).")
@click.option("--n-sentences", type=click.IntRange(min=1), help="First N sentences (default: all).")
@click.option("--model", "models", multiple=True, required=True,
              help="Short name, HF id or directory; repeat for several models (one run each).")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Store to add the runs to (created when absent; replaced atomically by a copy "
              "holding the new runs; finished parts wait in <out>.parts/ for a rerun to resume).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: CUDA when available.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--n-permutations", type=click.IntRange(min=0), default=20, show_default=True,
              help="Shuffled-pairs baseline draws per pair.")
@click.option("--n-bootstrap", type=click.IntRange(min=0), default=200, show_default=True,
              help="Bootstrap resamples per pair for confidence intervals.")
@click.option("--metrics", callback=_csv, help="Comma-separated metric names (default: all).")
@click.option("--umap/--no-umap", default=True, show_default=True, help="Compute 2-D projections.")
@click.option("--umap-n-neighbors", type=click.IntRange(min=2), default=15, show_default=True)
@click.option("--umap-min-dist", type=float, default=0.1, show_default=True)
@click.option("--transcribe/--no-transcribe", default=True, show_default=True,
              help="Transcribe the speech with every model that can, to report its CER per run.")
@click.option("--max-transcript-tokens", type=click.IntRange(min=1),
              help="Cap on generated tokens per clip when transcribing (default: the adapter's own; "
              "Whisper allows 20 tokens per second of audio, which stops decoding loops).")
@click.option("--speech-cache", type=click.Path(path_type=Path, file_okay=False),
              help="Directory caching synthesised speech between builds "
              "(default: $CROSSMODAL_LENS_CACHE/speech or ~/.cache/crossmodal-lens/speech).")
@click.option("--transcribe-sample", type=click.IntRange(min=1),
              help="Transcribe only the first N sentences of each language and voice (CER on a "
              "sample; default: every clip).")
@click.option("--voices", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Synthesised speech per language: 2 adds a second espeak-ng voice where the "
              "language table has one (a voice-change reference for speech-speech similarity).")
@click.option("--store-activations/--no-store-activations", default=True, show_default=True,
              help="Keep the pooled activations in the store (needed by `metrics` recomputation "
              "and the Your recording page); without, the run keeps metrics and maps only.")
@click.option("--activation-dtype", type=click.Choice(["float16", "float32", "int8"]),
              default="float16", show_default=True,
              help="Storage precision of pooled activations (int8: per-vector scale, a quarter of "
              "float32; metrics are computed from the stored values).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for permutations, bootstrap and UMAP.")
@click.option("--pooling", type=click.Choice(["mean", "last"]), default="mean", show_default=True,
              help="Mean over real positions, or the last one (decoder-only LLMs only).")
@click.option("--unsupported-langs", type=click.Choice(["refuse", "skip"]), default="refuse",
              show_default=True,
              help="A corpus language a model does not know: refuse the build, or skip it for "
              "that model (recorded in the run's config).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes computing the metric groups after extraction (the result is the "
              "same; each gets its share of the CPU threads).")
@click.option("--shard", callback=_shard,
              help="I/N: compute only shard I (0-based) of N (languages I, I+N, ...) and publish "
              "nothing; run `merge` once all N are done. For SLURM arrays and other schedulers.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="ray: run the shards as Ray tasks (RAY_ADDRESS names a cluster; else a local "
              "one), one GPU per task where there are GPUs; needs requirements-ray.txt.")
@click.option("--n-shards", type=click.IntRange(min=1),
              help="Shards for --executor ray (default: the cluster's GPUs, else its CPUs, at "
              "most one per language).")
@click.pass_context
def build(ctx: click.Context, shard, executor: str, n_shards: int | None, **options) -> None:
    """Add runs to a store: speech, transcripts, pooled activations, metrics, projections."""
    from precompute.pipeline import build as run_build

    config = _run(ctx, lambda: BuildConfig(**options))
    if shard is not None and executor == "ray":
        raise click.UsageError("--shard runs one shard here; --executor ray runs them all: "
                               "give one of them")
    with _sigterm_as_exit():  # so `kill` also removes the temporary store file
        result = _run(ctx, lambda: run_build(config, command_line=ctx.obj.get("argv"),
                                             shard=shard, executor=executor, n_shards=n_shards))
    for run_id in result.complete:
        click.echo(f"run {run_id} is already complete in {config.out}: nothing to do")
    if shard is not None:
        if result.pending:
            click.echo(f"shard {shard[0]}/{shard[1]} done ({result.units_done} parts computed, "
                       f"{result.units_skipped} already there); once every shard is done: "
                       f"python -m precompute merge --store {config.out}")
        return
    if result.added:
        click.echo(f"wrote {config.out}: {', '.join(result.added)}")


@cli.command()
@_store_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes computing the metric groups (each gets its share of the CPU "
              "threads); the result is the same.")
@click.pass_context
def merge(ctx: click.Context, store_path: Path, workers: int) -> None:
    """Publish the runs whose `build --shard I/N` outputs are all there into the store."""
    from precompute.pipeline import merge as run_merge

    with _sigterm_as_exit():
        result = _run(ctx, lambda: run_merge(store_path, workers=workers))
    for run_id in result.complete:
        click.echo(f"run {run_id} is already complete in {store_path}: nothing to do")
    if result.added:
        click.echo(f"wrote {store_path}: {', '.join(result.added)}")


@cli.command()
@_store_option
@click.option("--run", "run_ids", multiple=True,
              help="Run id; repeat for several (default: every complete run).")
@click.option("--metrics", callback=_csv,
              help="Comma-separated metric names (default: the run's; all when it had all).")
@click.option("--n-permutations", type=click.IntRange(min=0),
              help="Shuffled-pairs baseline draws per pair (default: the run's).")
@click.option("--n-bootstrap", type=click.IntRange(min=0),
              help="Bootstrap resamples per pair (default: the run's).")
@click.option("--seed", type=int, help="Seed for permutations, bootstrap and UMAP (default: the run's).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]),
              help="Default: the run's (automatic when it had none or CUDA is missing here).")
@click.option("--umap/--no-umap", default=None,
              help="Recompute the 2-D projections too (default: when the run had them); "
              "--no-umap keeps the stored ones.")
@click.option("--umap-n-neighbors", type=click.IntRange(min=2), help="Default: the run's.")
@click.option("--umap-min-dist", type=float, help="Default: the run's.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes computing the metric groups (the result is the same; each reads "
              "the layers it needs from the store and gets its share of the CPU threads).")
@click.pass_context
def metrics(ctx: click.Context, store_path: Path, run_ids: tuple[str, ...], workers: int,
            **options) -> None:
    """Recompute metrics (and projections) from a store's activations, without the model."""
    from precompute.recompute import RecomputeOptions, recompute

    settings = RecomputeOptions(**options)
    with _sigterm_as_exit():  # so `kill` also removes the temporary store file
        done = _run(ctx, lambda: recompute(store_path, run_ids or None, settings,
                                           command_line=ctx.obj.get("argv"), workers=workers))
    for run in done:
        maps = "projections kept" if run.n_projections is None else f"{run.n_projections} projections"
        click.echo(f"recomputed {run.run_id} in {store_path}: {run.n_metrics} metric rows, {maps}")


@cli.command()
@_store_option
@click.option("--run", "run_ids", multiple=True,
              help="Run id; repeat for several (default: every complete run with stored "
              "activations; with --against, every complete run).")
@click.option("--against", "against", multiple=True,
              help="Another run on the same sentences (repeat, or 'all'): also the matrices between "
              "the runs' components. A text-only run without stored activations is extracted "
              "again by its model.")
@click.option("--pivot", default="eng_Latn", show_default=True,
              help="Cross-language matrices pair each language with this one; 'all': every pair.")
@click.option("--langs", callback=_csv, help="Comma-separated languages (default: the runs').")
@click.option("--n-permutations", type=click.IntRange(min=1), default=100, show_default=True,
              help="Shared shuffles per cell (the calibrated best match's p-value is >= 1/(N+1)).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Level of the calibrated best-match threshold.")
@click.option("--per-language-resamples/--mean-resamples-only", default=True, show_default=True,
              help="Keep every matrix's bootstrap values (differences with intervals per language), "
              "or only the language means' (a smaller store).")
@click.option("--per-language", callback=_matrix_pairings,
              help="Comma-separated pairings (text-text, speech-speech, text-speech, speech-text) "
              "whose per-language matrices are stored, or 'none'; the others keep only their "
              "mean over languages (default: every pairing).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: CUDA when available.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for torch (small batched eigendecompositions run fastest on one).")
@click.pass_context
def matrices(ctx: click.Context, store_path: Path, run_ids: tuple[str, ...],
             against: tuple[str, ...], pivot: str, langs, **options) -> None:
    """Layer x layer matrices (every layer against every layer, per language and their mean) with
    calibrated best matches, from stored activations, into the store."""
    from precompute.matrices import MatrixOptions, matrices as run_matrices

    settings = MatrixOptions(pivot=None if pivot == "all" else pivot, langs=langs, **options)
    with _sigterm_as_exit():
        done = _run(ctx, lambda: run_matrices(store_path, run_ids or None, against or None, settings))
    for result in done:
        click.echo(f"{result.run_a} x {result.run_b}: {result.n_matrices} matrices, "
                   f"{result.n_rows} rows in {store_path}")


@cli.command()
@_store_option
@click.option("--run", "run_id", required=True,
              help="The run to split (complete, with stored activations).")
@click.option("--parts", "n_parts", type=click.IntRange(min=2), default=2, show_default=True,
              help="How many disjoint parts of its sentences.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the permutation that assigns sentences to parts.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes measuring the parts (each reads the parent's activations from the "
              "store and gets its share of the CPU threads); the rows are the same.")
@click.pass_context
def halves(ctx: click.Context, store_path: Path, run_id: str, n_parts: int, seed: int,
           workers: int) -> None:
    """Add derived runs holding disjoint parts of a run's sentences, measured from its stored
    activations (no model): the verdict metrics and controls on each part, for the replication
    tables of `report` and the dashboard. Parts already in the store are kept."""
    from precompute.halves import split_run

    with _sigterm_as_exit():
        done = _run(ctx, lambda: split_run(store_path, run_id, n_parts, seed, workers=workers,
                                           command_line=ctx.obj.get("argv")))
    for part in done:
        if part.n_metrics is None:
            click.echo(f"{part.run_id} is already in {store_path}: kept as it is")
        else:
            click.echo(f"added {part.run_id} to {store_path}: {part.n_sentences} sentences, "
                       f"{part.n_metrics} metric rows, {part.n_variants} length-matched rows")


@cli.command()
@_store_option
@click.option("--run", "run_id", help="Run id (default: every complete run built from a corpus; "
              "derived parts appear in the replication tables).")
@click.option("--metric", default="svcca", show_default=True,
              help="Metric whose single-metric summary is printed under each finding's table; the "
              "headline verdicts always use every stored metric (SVCCA, linear and debiased CKA, "
              "mutual kNN) and control.")
@click.option("--replicate-with", "others", multiple=True, type=click.Path(path_type=Path),
              help="Another store whose runs join the replication tables (the same model on "
              "another corpus: a corpus sharing languages with this store's cannot be in the same "
              "store, whose items are keyed by language and sentence id). Repeatable.")
@click.pass_context
def report(ctx: click.Context, store_path: Path, run_id: str | None, metric: str,
           others: tuple[Path, ...]) -> None:
    """Print the study's findings for a run: per finding a table of metrics x controls (raw,
    length-residualised, length-matched, voice reference) with 95% intervals over sentence
    resamples within this corpus, and a headline: holds / does not hold where every decided cell
    agrees, mixed where they disagree, not enough data, or not applicable (no such stage or
    modality in the model). Then the replication tables: the same model's runs on different
    corpora (of this store and the --replicate-with ones) and the disjoint parts of a run's
    sentences (`halves`), finding by finding, on the languages they share."""

    def text() -> str:
        with Store.open(store_path) as store, ExitStack() as opened:
            extra = [opened.enter_context(Store.open(path)) for path in others]
            from core import verdicts
            from core.api import run_verdicts

            run_ids = [run_id] if run_id else _complete_runs(store)
            if not run_ids:
                raise StoreError(f"{store_path} has no complete run; build one first")
            blocks = []
            for rid in run_ids:
                store.run(rid)  # clear error for an unknown run id
                found = run_verdicts(store, rid, metric)
                blocks.append(f"== {rid} ==\n{verdicts.format_verdicts(found)}")
            blocks += _replication_blocks([store, *extra], [run_id] if run_id else None, metric)
            return "\n\n".join(blocks)

    click.echo(_run(ctx, text))


@cli.command()
@_store_option
@click.pass_context
def info(ctx: click.Context, store_path: Path) -> None:
    """Schema version, runs and row counts of a store."""

    def text() -> str:
        with Store.open(store_path) as store:
            lines = [f"store: {store_path} ({store_path.stat().st_size / 1e6:.1f} MB)",
                     f"schema version: {store.schema_version()}"]
            runs = store.runs()
            lines.append(f"runs: {len(runs)}")
            for run in runs.itertuples():
                n_metrics = len(store.metric_names(run.run_id))
                lines.append(f"  {run.run_id}  model={run.model}  status={run.status}  "
                             f"created={run.created_at:%Y-%m-%d %H:%M:%S}  metrics={n_metrics}")
            langs = store.languages().lang.tolist()
            lines.append(f"languages ({len(langs)}): {', '.join(langs)}")
            lines.append("rows: " + ", ".join(f"{t}={n}" for t, n in store.counts().items()))
            return "\n".join(lines)

    click.echo(_run(ctx, text))


@cli.command()
@_store_option
@click.option("--table", required=True, type=click.Choice(TABLES),
              help="The table to write (docs/ARCHITECTURE.md, Store, lists their columns).")
@click.option("--run", "run_id", help="Only this run's rows (items: with its tokens, transcripts "
              "and CER).")
@click.option("--metric", help="Only this metric's rows (metrics, metric_variants).")
@click.option("--pairing", type=click.Choice(["text-text", "speech-speech", "text-speech"]),
              help="Only this pairing's rows (metrics, metric_variants).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet", show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="File to write (replaced whole; CSV holds BLOB columns as hex).")
@click.pass_context
def export(ctx: click.Context, store_path: Path, table: str, run_id: str | None,
           metric: str | None, pairing: str | None, fmt: str, out: Path) -> None:
    """Write one table of a store (filtered by run, metric, pairing) to Parquet or CSV."""

    def text() -> str:
        with Store.open(store_path) as store:
            schema, batches = store.export_batches(table, run_id=run_id, metric=metric,
                                                   pairing=pairing)
            rows = write_batches(batches, schema, out, fmt)
        return f"wrote {rows} rows of {table} to {out} ({fmt})"

    click.echo(_run(ctx, text))


@cli.command("item-sources")
@_store_option
@click.option("--speech-cache", type=click.Path(path_type=Path, file_okay=False),
              help="Synthesis cache (default: $CROSSMODAL_LENS_CACHE/speech or ~/.cache/...).")
@click.pass_context
def item_sources(ctx: click.Context, store_path: Path, speech_cache: Path | None) -> None:
    """Record checksums of a store's synthesised speech (stores built before item_sources):
    synthesised again with the recorded voice, kept only where it matches the stored length.
    Migrates the store; idempotent."""

    def text() -> str:
        from precompute.item_sources import backfill_item_sources

        done = backfill_item_sources(store_path, speech_cache=speech_cache)
        left = [f"{n} {what}" for n, what in ((done.differing, "synthesised differently here"),
                                              (done.recordings, "recordings (file unknown)"),
                                              (done.unknown_voice, "of unknown voice")) if n]
        return (f"{store_path}: {done.added} item sources added ({done.already} already there)"
                + (f"; left without: {', '.join(left)}" if left else ""))

    click.echo(_run(ctx, text))


@cli.command()
@_store_option
@click.pass_context
def migrate(ctx: click.Context, store_path: Path) -> None:
    """Apply pending schema migrations to a store in place."""

    def text() -> str:
        with Store.open(store_path, read_only=False) as store:
            return f"{store_path}: schema version {store.schema_version()}"

    click.echo(_run(ctx, text))


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while writing a store, so cleanup in ``finally`` blocks runs."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped, e.g. by pytest)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _configure_logging(verbose: bool) -> None:
    """Log the ``precompute`` logger to stderr, without touching the root logger."""
    logger = logging.getLogger("precompute")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _complete_runs(store: Store) -> list[str]:
    """Complete runs built from a corpus (derived parts are reported in replication tables)."""
    from core.replication import is_derived

    runs = store.runs()
    return [r.run_id for r in runs.itertuples() if r.status == "complete"
            and not is_derived(r.config)]


def _replication_blocks(stores: list[Store], only: list[str] | None, metric: str) -> list[str]:
    """``report``'s replication tables: every group of the stores' runs together (those holding
    ``only``'s runs, when given), each run's verdicts on the languages its group shares, read from
    the store that holds it (the first, when two hold one run id)."""
    from core import findings, replication

    infos, owner = [], {}
    for store in stores:
        for run in store.runs().to_dict("records"):
            if run["run_id"] not in owner:
                owner[run["run_id"]] = store
                infos.append(replication.run_info(run, store.components(run["run_id"])))

    def verdicts(rid: str, langs: tuple[str, ...]) -> list:
        store = owner[rid]
        return replication.evaluate_on(
            langs, store.metrics(rid, with_resamples=True), store.metric_variants(rid),
            findings.run_levels(store.languages(), store.run_languages(rid)),
            store.components(rid), n_permutations=store.run(rid)["config"].get("n_permutations"),
            detail_metric=metric)

    blocks = []
    for group in replication.replication_groups(infos):
        if only and not set(only) & (set(group.run_ids) | {group.parent}):
            continue
        compared = None if group.problem else replication.compare(
            {rid: verdicts(rid, group.shared_langs) for rid in group.run_ids},
            dict(zip(group.run_ids, group.labels)))
        blocks.append(replication.format_replication(group, compared))
    return blocks


def _run(ctx: click.Context, action):
    """Run ``action``; expected failures become a one-line error (full traceback with -v)."""
    from core.models.base import ModelTooLargeError
    from core.models.registry import UnknownModelError, available_models

    try:
        return action()
    except (StoreError, BuildError, KeyError, ValueError, FileNotFoundError,
            ModelTooLargeError, OSError) as exc:
        if ctx.obj and ctx.obj.get("verbose"):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        lines = message.strip().splitlines() or [type(exc).__name__]
        message = lines[0]
        if isinstance(exc, UnknownModelError) and len(lines) > 1:
            message += f" Short names: {', '.join(available_models())} (run with -v for families)"
        elif len(lines) > 1:
            message += " (run with -v for details)"
        raise click.ClickException(message) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status instead of exiting (for tests)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name="python -m precompute", standalone_mode=True,
                 obj={"argv": args})
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
