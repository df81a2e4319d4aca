"""Latency of "Your recording": from an uploaded file to every chart, split by stage.

Stages, as the page runs them (dashboard/views/recording.py, without Streamlit):

- decode: ``core.audio.decode_upload`` of the file's bytes (validation, resampling);
- model: language identification (with ``--detect``), the transcript, and the per-layer states of
  the clip (speech encoder) and of the transcript (text path): ``transcribe`` + ``clip_states``;
- neighbours: ``core.recording.analyse`` against the run's stored states (neighbours, sentence
  ranks, agreement with the corpus and its shuffled baseline, map placement, frame view);
- charts: every figure of the page built and serialised to JSON (what ``st.plotly_chart`` sends).

Once per process and reported apart: loading the model (with its warm-up on a synthetic clip, as
the page loads it) and reading the run's stored states. Per clip length, the page's preparation
while it waits for a clip (the stored part of the maps and the language's corpus side of the
agreement, ``dashboard.live.prepare``; caches emptied first) is timed, then the first clip is
reported apart, then the median of ``--repeats`` runs, then the same with the text typed by the
user (no transcript decoded, as on the page). Clips
are 5 s and 20 s of real English speech (FLEURS clips from ../shared, cut or joined) or espeak-ng
sentences when ../shared is absent, uploaded as 16-bit WAV. The page's per-clip result caches
(``st.cache_data``) are not used: every run recomputes the clip.

    .venv/bin/python -m bench.bench_recording --store data/crossmodal_lens.duckdb
    .venv/bin/python -m bench.bench_recording --store S --device cuda --repeats 5 --detect
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FLEURS = REPO_ROOT.parent / "shared" / "data" / "fleurs_clips" / "cuttledoc"
RATE = 16_000
STAGES = ("decode", "model", "neighbours", "charts")


def speech(seconds: float) -> np.ndarray:
    """``seconds`` of English speech at 16 kHz: FLEURS clips joined and cut, else espeak-ng."""
    from core.audio import load_audio, synthesize

    parts, total = [], 0
    sources = sorted(FLEURS.glob("fleurs-en-00[158].ogg")) if FLEURS.is_dir() else []
    while total < seconds * RATE:
        if sources:
            wave = load_audio(sources[len(parts) % len(sources)])
        else:
            wave = synthesize("The train to the airport leaves every fifteen minutes from the "
                              "main station.", "en-us")
        parts.append(wave)
        total += len(wave)
    return np.concatenate(parts)[: int(seconds * RATE)]


def wav_bytes(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def figures(result, clip, reference, languages, stored_maps: dict) -> list:
    """Every figure the page draws for ``result``. ``stored_maps`` stands for the page's
    ``live.stored_map`` and ``live.map_methods`` caches (the clip-independent part of each map
    figure, built once per run and component; each component's map method): pass the same dict
    for every clip of a run."""
    from dashboard.charts import recording as rc

    figs = [rc.waveform_figure(clip.waveform, clip.sampling_rate)]
    for component in dict.fromkeys(result.neighbours["component"]):
        figs.append(rc.neighbour_score_figure(result.neighbours, languages, component))
    if not result.ranks.empty:
        figs.append(rc.sentence_rank_figure(result.ranks))
    figs.append(rc.agreement_figure(result.agreement))
    placements = result.placements
    if not placements.empty:  # each component in its own map method, as the page shows it
        methods = _map_methods(stored_maps, reference)
        placements = placements[placements["method"] == placements["component"].map(methods)]
        for component in dict.fromkeys(placements["component"]):
            stored = _stored_map(stored_maps, reference, languages, component, methods[component],
                                 *rc.map_panels(placements, component))
            figs.append(rc.clip_map_figure(stored, placements, component=component))
    figs += [rc.frame_figure(view, clip.waveform, clip.sampling_rate) for view in result.frames]
    return figs


def _map_methods(stored_maps: dict, reference) -> dict[str, str]:
    """``live.map_methods`` (once per run on the page) with ``stored_maps`` for its cache."""
    from core import recording

    if "methods" not in stored_maps:
        stored_maps["methods"] = recording.map_methods(reference)
    return stored_maps["methods"]


def _stored_map(stored_maps: dict, reference, languages, component: str, method: str,
                panels: tuple, names: tuple):
    """``live.stored_map`` with ``stored_maps`` for its cache."""
    from dashboard.charts import recording as rc

    key = (component, method, panels, names)
    if key not in stored_maps:
        stored_maps[key] = rc.run_stored_map(reference.projections, languages,
                                             component=component, method=method, panels=panels,
                                             layer_names=names)
    return stored_maps[key]


def prepare(reference, languages, lang: str, stored_maps: dict) -> None:
    """What ``dashboard.live.prepare`` does before a clip arrives (the model is loaded and warmed
    up already), with ``stored_maps`` standing for its ``stored_map`` cache."""
    from core import recording

    shown = _map_methods(stored_maps, reference)
    for (component, method), (panels, names) in recording.map_panels_of(reference).items():
        if shown[component] == method:
            _stored_map(stored_maps, reference, languages, component, method, panels, names)
    recording.prepare_language(reference, lang)


def one_run(data: bytes, adapter, reference, languages, lang: str, detect: bool,
            stored_maps: dict, typed: str | None = None) -> dict:
    """One upload, every stage timed. ``typed``: the user typed what is said, so (as on the
    page) no transcript is decoded and ``typed`` goes through the text path."""
    from core import recording
    from core.audio import decode_upload

    adapter.clear_clip_caches()  # every run is a new clip to the model
    times = {}
    start = time.perf_counter()
    clip = decode_upload(data)
    times["decode"] = time.perf_counter() - start

    start = time.perf_counter()  # as dashboard.live.hear then dashboard.live.states
    if detect:  # keeps every layer of the clip: the states below reuse its encoder pass
        adapter.detect_language(clip.waveform)
    states = recording.clip_states(adapter, clip.waveform, lang, None)  # speech, then its
    text = typed if typed is not None else \
        adapter.transcribe([clip.waveform], [lang])[0]                 # transcript (cached pass)
    times["transcript"] = time.perf_counter() - start
    text_states = recording.clip_states(
        adapter, clip.waveform, lang, text,
        components=[c.name for c in adapter.components() if c.modality == "text"])
    states.pooled.update(text_states.pooled)
    states.text = text_states.text
    times["model"] = time.perf_counter() - start

    start = time.perf_counter()
    result = recording.analyse(reference, states)
    times["neighbours"] = time.perf_counter() - start

    start = time.perf_counter()
    for fig in figures(result, clip, reference, languages, stored_maps):
        fig.to_json()
    times["charts"] = time.perf_counter() - start
    times["total"] = sum(times[s] for s in STAGES)
    times["n_words"] = len(text.split())
    times["text"] = text
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=str(REPO_ROOT / "data" / "crossmodal_lens.duckdb"))
    parser.add_argument("--run", default=None, help="run id (default: the store's first run of "
                                                    "--model)")
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lang", default="eng_Latn")
    parser.add_argument("--seconds", default="5,20")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detect", action="store_true", help="identify the language too")
    args = parser.parse_args(argv)

    import torch

    from core import recording
    from core.models.registry import load_model
    from core.store import Store

    start = time.perf_counter()
    with Store.open(args.store) as store:
        runs = store.runs()
        chosen = runs[runs["model"] == args.model] if args.run is None else \
            runs[runs["run_id"] == args.run]
        if chosen.empty:
            print(f"no run of {args.model} in {args.store}", file=sys.stderr)
            return 2
        run_id = str(chosen["run_id"].iloc[0])
        reference = recording.load_reference(store, run_id)
        languages = store.languages()
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    adapter = load_model(args.model, device=args.device, progress=False)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    recording.warm_up(adapter)  # as dashboard.live loads a model
    warm_s = time.perf_counter() - start
    n_items = len(next(iter(reference.points.values())).items)
    print(f"store {args.store} run {run_id}: {len(reference.points)} points x {n_items} items; "
          f"read in {reference_s:.2f} s; {args.model} loaded on {args.device} in {load_s:.2f} s "
          f"and warmed up in {warm_s:.2f} s; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'clip':>12} " + " ".join(f"{s:>11}" for s in (*STAGES, "total")) + "   (s)")

    def row(label: str, values: dict, note: str) -> None:
        print(f"{label:>12} " + " ".join(f"{values[k]:>11.3f}" for k in (*STAGES, "total"))
              + f"   {note}")

    for seconds in (float(s) for s in args.seconds.split(",")):
        data = wav_bytes(speech(seconds))
        for cache in ("_corpus_agreement_cache", "_normalised_texts"):  # cold for every length
            reference.__dict__.pop(cache, None)
        stored_maps: dict = {}
        # as the page does while it waits for a clip (dashboard.live.prepare): the stored maps
        # and the language's corpus side, which the first clip would otherwise compute
        start = time.perf_counter()
        prepare(reference, languages, args.lang, stored_maps)
        prepare_s = time.perf_counter() - start
        first = one_run(data, adapter, reference, languages, args.lang, args.detect, stored_maps)
        row(f"{seconds:.0f}s first", first, f"(first clip, after the page prepared the stored "
                                            f"side in {prepare_s:.3f} s before it arrived)")
        runs_ = [one_run(data, adapter, reference, languages, args.lang, args.detect, stored_maps)
                 for _ in range(args.repeats)]
        medians = {k: statistics.median(r[k] for r in runs_) for k in (*STAGES, "total")}
        row(f"{seconds:.0f}s", medians, f"(median of {args.repeats}; {runs_[0]['n_words']} words; "
            f"model stage up to the transcript: "
            f"{statistics.median(r['transcript'] for r in runs_):.3f} s)")
        typed = [one_run(data, adapter, reference, languages, args.lang, args.detect,
                         stored_maps, typed=first["text"]) for _ in range(args.repeats)]
        medians = {k: statistics.median(r[k] for r in typed) for k in (*STAGES, "total")}
        row(f"{seconds:.0f}s typed", medians, "(median; text typed by the user: no transcript "
                                             "decoded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
