"""Live inference for the "Your recording" page: the model, once per process, and cached results.

- ``loaded_model(name)``: ``st.cache_resource``, so every session shares one copy (run once on a
  synthetic clip as it loads: ``core.recording.warm_up``); it owns one worker thread, and every
  inference on it (warm-up, language identification, transcription, states) runs there
  (``LoadedModel.run``), so concurrent analyses queue instead of loading a second copy or racing
  on one. One long-lived thread, not the caller's: Streamlit runs each rerun in a new thread, and
  torch's CPU thread pool is set up again for every new calling thread (a 5-s clip's model stage
  took ~40 % longer from a fresh thread than from a warm one; ``bench/README.md``).
- ``reference(ref, run_id)``: the run's stored pooled states and maps (``core.recording``), one copy
  per process (``st.cache_resource``: it is read-only and too large to copy on every rerun).
- ``stored_map(ref, run_id, ...)``: the clip-independent part of each map figure (stored points,
  legend, layout), built once per process and copied for each clip (``st.cache_resource``);
  ``prepare`` builds them, and the corpus side of the chosen language, before a clip arrives.
- ``decode``, ``hear``, ``states`` and the sections ``neighbours``, ``agreement``,
  ``placements``, ``frames``: ``st.cache_data`` keyed on the clip's sha256 and the settings
  (the waveform itself is passed as an unhashed ``_`` argument), so a rerun or a second visitor with
  the same clip and settings reads the result instead of recomputing it.

Nothing is written to disk: uploads are decoded from memory (``core.audio.decode_upload``; the one
exception, a container libsndfile cannot read, goes through a private temporary folder that is
removed at once, under a name of ours).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from core import recording
from core.audio import Recording, decode_upload
from dashboard import state
from dashboard.charts import recording as recording_charts

#: what the page tells the user when a model cannot be loaded here
LOAD_FAILED = "cannot be loaded on this machine"

log = logging.getLogger("crossmodal_lens")
T = TypeVar("T")


@dataclass
class LoadedModel:
    """A loaded adapter and the one thread that runs it."""
    adapter: Any
    worker: ThreadPoolExecutor

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the model's thread, after the calls queued before it; its
        result or its exception."""
        return self.worker.submit(function, *args).result()


class ModelUnavailable(RuntimeError):
    """The run's model cannot be loaded here; the message says why (memory needed, offline...)."""


_LOAD_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False, max_entries=2)
def _load(name: str) -> LoadedModel:
    from core.models.registry import load_model

    with _LOAD_LOCK:  # two first visitors at once: one load, the other waits for it
        adapter = load_model(name, progress=False)
        loaded = LoadedModel(adapter, ThreadPoolExecutor(max_workers=1,
                                                         thread_name_prefix=f"model-{name}"))
        # evicted from the cache: its thread ends with it (queued calls still run first)
        weakref.finalize(loaded, loaded.worker.shutdown, wait=False)
        try:  # part of loading: the first clip then costs what later ones do
            loaded.run(recording.warm_up, adapter)
        except Exception:  # noqa: BLE001 - a failed warm-up must not make the model unusable
            log.warning("warming %s up failed; its first clip will be slower", name,
                        exc_info=True)
        return loaded


def loaded_model(name: str) -> LoadedModel:
    """The shared model, or ``ModelUnavailable`` with the reason (never a traceback)."""
    from core.models.base import ModelTooLargeError

    try:
        return _load(name)
    except ModelTooLargeError as error:
        raise ModelUnavailable(f"`{name}` {LOAD_FAILED}: {error}") from error
    except Exception as error:
        text = " ".join(str(error).split())
        raise ModelUnavailable(f"`{name}` {LOAD_FAILED}: {text[:600]}") from error


@st.cache_resource(show_spinner="Reading the run's stored states…", max_entries=4)
def reference(ref: state.StoreRef, run_id: str) -> recording.Reference:
    return state.read_store(ref, lambda s: recording.load_reference(s, run_id))


@st.cache_resource(show_spinner=False, max_entries=16)
def stored_map(ref: state.StoreRef, run_id: str, component: str, method: str,
               panels: tuple[tuple[int, str], ...], layer_names: tuple[tuple[int, str], ...]
               ) -> recording_charts.StoredMap:
    """``recording_charts.stored_map`` of the run's ``method`` maps for ``component``'s panels
    (``recording_charts.map_panels``); shared by every session, nothing is added to it:
    ``clip_map_figure`` copies it (one copy at a time)."""
    return recording_charts.run_stored_map(reference(ref, run_id).projections,
                                           state.languages(ref), component=component,
                                           method=method, panels=panels, layer_names=layer_names)


def prepare(ref: state.StoreRef, run_id: str, model: str, lang: str | None
            ) -> dict[str, recording_charts.StoredMap]:
    """While the page waits for a clip: load (and warm up) the run's model, build the run's
    stored maps and, when the language is chosen, the corpus side of its agreement, so the first
    clip costs what later ones do. All are cached (``_load``, ``stored_map``, the reference's
    own cache), so later calls return at once. A model that cannot load here is left for the
    clip's analysis to explain. Returns the stored maps by component (the page shows them while
    it waits)."""
    try:
        loaded_model(model)
    except ModelUnavailable:
        pass
    reference_ = reference(ref, run_id)
    shown = map_methods(ref, run_id)
    maps = {component: stored_map(ref, run_id, component, method, panels, names)
            for (component, method), (panels, names) in recording.map_panels_of(reference_).items()
            if shown[component] == method}
    if lang is not None:
        recording.prepare_language(reference_, lang)
    return maps


@st.cache_resource(show_spinner=False, max_entries=4)
def map_methods(ref: state.StoreRef, run_id: str) -> dict[str, str]:
    """``core.recording.map_methods`` of the run: the method each component's maps are shown in
    (once per run: it groups every stored map position; read-only)."""
    return recording.map_methods(reference(ref, run_id))


@st.cache_data(show_spinner=False, max_entries=16)
def decode(sha256: str, _data: bytes) -> Recording:
    """``decode_upload`` of the bytes whose sha256 is given (raises ``AudioError``)."""
    return decode_upload(_data)


@st.cache_data(show_spinner=False, max_entries=32)
def hear(model: str, sha256: str, _waveform: np.ndarray, lang: str | None,
         prefer: tuple[str, ...], transcribe: bool = True) -> dict:
    """Language (given, or identified by the model) and the model's transcript of the clip.

    Returns ``lang``, ``detected`` (Whisper code or None), ``probability``, ``transcript`` (None when
    the model cannot transcribe, or when ``transcribe`` is False: the user typed what is said, and
    greedy decoding is a third of the page's time) and ``speech``: the clip's states (speech
    components only). Language ID and the states share one encoder pass (the adapter keeps the
    clip's layers). Raises ``UnsupportedLanguageError`` for a language the model lacks.
    """
    loaded = loaded_model(model)
    return loaded.run(_hear, loaded.adapter, model, _waveform, lang, prefer, transcribe)


def _hear(adapter, model: str, waveform: np.ndarray, lang: str | None,
          prefer: tuple[str, ...], transcribe: bool) -> dict:
    """``hear``'s work, on the model's thread."""
    detected = probability = None
    if lang is None:
        if not hasattr(adapter, "detect_language"):
            raise ValueError(f"`{model}` cannot identify languages: choose the language")
        detected, probability = adapter.detect_language(waveform)
        lang = recording.flores_for_whisper(detected, prefer)
        if lang is None:
            raise ValueError(f"the model hears language `{detected}` (p = {probability:.2f}), "
                             "which the project's language table does not list: choose one")
    if not adapter.supports_language(lang):
        raise _unsupported(adapter, model, lang)
    # the speech states first: Whisper's transcript then reuses their encoder pass
    speech = recording.clip_states(adapter, waveform, lang, None)
    transcript = None
    if transcribe:
        try:
            transcript = adapter.transcribe([waveform], [lang])[0]
        except NotImplementedError:
            pass
    return {"lang": lang, "detected": detected, "probability": probability,
            "transcript": transcript, "transcribed": transcribe, "speech": speech}


@st.cache_data(show_spinner=False, max_entries=8)
def states(model: str, sha256: str, _speech: recording.ClipStates, lang: str,
           text: str) -> recording.ClipStates:
    """The clip's speech states (``hear(...)["speech"]`` for the same sha256 and language) with
    the text path's states of ``text`` added."""
    loaded = loaded_model(model)
    text_components = [c.name for c in loaded.adapter.components() if c.modality == "text"]
    text_states = loaded.run(lambda: recording.clip_states(
        loaded.adapter, np.zeros(0, np.float32), lang, text, components=text_components))
    return recording.ClipStates(lang=lang, text=text_states.text,
                                pooled={**_speech.pooled, **text_states.pooled},
                                frames=_speech.frames, frame_times_s=_speech.frame_times_s)


# The clip against the run, one cached call per section of the page, so the page draws each
# section while the next is computed (the browser's drawing overlaps the server's work). Each is
# keyed like ``states`` plus what the section depends on; ``_states`` are that clip's states.

@st.cache_data(show_spinner=False, max_entries=32)
def neighbours(ref: state.StoreRef, run_id: str, model: str, sha256: str, lang: str, text: str,
               k: int, _states: recording.ClipStates) -> recording.NeighbourSection:
    return recording.neighbour_section(reference(ref, run_id), _states, k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def agreement(ref: state.StoreRef, run_id: str, model: str, sha256: str, lang: str, text: str,
              sentence: int | None, _states: recording.ClipStates
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    return recording.agreement_section(reference(ref, run_id), _states, sentence)


@st.cache_data(show_spinner=False, max_entries=32)
def placements(ref: state.StoreRef, run_id: str, model: str, sha256: str, lang: str, text: str,
               k: int, _states: recording.ClipStates) -> pd.DataFrame:
    return recording.place_in_maps(reference(ref, run_id), _states, k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def frames(ref: state.StoreRef, run_id: str, model: str, sha256: str, lang: str, text: str,
           sentence: int | None, _states: recording.ClipStates) -> list[recording.FrameView]:
    return recording.frame_agreement(reference(ref, run_id), _states, sentence)


def _unsupported(adapter, model: str, lang: str) -> Exception:
    """UnsupportedLanguageError naming the language and, for Whisper, why (its table entry)."""
    from core.languages import language
    from core.models.base import UnsupportedLanguageError

    try:
        name = f"{language(lang).name} ({lang})"
    except KeyError:
        name = lang
    reason = ""
    if hasattr(adapter, "whisper_language"):
        try:
            adapter.whisper_language(lang)
        except UnsupportedLanguageError as error:
            reason = str(error).split(". Use ", 1)[0]
    return UnsupportedLanguageError(f"`{model}` does not know {name}" + (
        f": {reason}" if reason else "") + ". Choose another language.")
