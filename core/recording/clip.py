"""The clip's side: the model's states for a recording and what is said in it, pooled as the
store pools them, a warm-up on a synthetic clip, and the FLORES code of a detected language."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class ClipStates:
    """The model's states for one clip and what is said in it.

    ``frames[c]``: (layers, frames, dim) states of speech component ``c`` at the frames holding
    audio, ``frame_times_s`` their start times; ``pooled[c]``: (layers, dim) pooled states of every
    component (speech: the clip; text: the transcript).
    """

    lang: str
    text: str
    pooled: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]
    frame_times_s: dict[str, np.ndarray]


def warm_up(adapter, *, lang: str = "eng_Latn", seconds: float = 5.0,
            sampling_rate: int = 16_000) -> bool:
    """Run the page's model work once on a synthetic clip (a quiet tone) and a short text, so
    that the first user's clip does not pay the model's first-call costs (memory allocation,
    kernel choice: ~0.9 s of the first 5-s clip for whisper-base on a 2-core CPU). Returns False,
    doing nothing, when the model does not know ``lang``. Meant for a model just loaded: the
    adapter's per-clip caches are emptied afterwards (they held only the tone)."""
    if not adapter.supports_language(lang):
        return False
    times = np.arange(int(seconds * sampling_rate), dtype=np.float32) / sampling_rate
    tone = (0.05 * np.sin(2 * np.pi * 220.0 * times)).astype(np.float32)
    clip_states(adapter, tone, lang, "A short sentence to warm the text path up.")
    try:
        adapter.transcribe([tone], [lang])
    except NotImplementedError:
        pass
    adapter.clear_clip_caches()  # they hold only the tone's states
    return True


def clip_states(adapter, waveform: np.ndarray, lang: str, text: str | None, *,
                components: Iterable[str] | None = None) -> ClipStates:
    """Token-level states of the clip (speech components) and of ``text`` (text components),
    pooled as the store pools them. ``text`` None or blank: the text components are skipped."""
    from core.models.base import pool_token_states

    pooled, frames, times = {}, {}, {}
    wanted = set(components) if components is not None else None
    for comp in adapter.components():
        if wanted is not None and comp.name not in wanted:
            continue
        if comp.modality == "speech":
            states = adapter.token_states(comp.name, waveform, lang)
            pooled[comp.name] = pool_token_states(states)
            mask = np.asarray(states.pooled_mask[0], dtype=bool)
            if all(np.array_equal(np.asarray(m, dtype=bool), mask) for m in states.pooled_mask):
                frames[comp.name] = np.stack([layer[mask] for layer in states.layers])
                t = states.times_s[0]
                times[comp.name] = (np.asarray(t)[mask] if t is not None
                                    else np.arange(int(mask.sum()), dtype=float))
        elif text and text.strip():
            pooled[comp.name] = pool_token_states(adapter.token_states(comp.name, text.strip(), lang))
    return ClipStates(lang=lang, text=(text or "").strip(), pooled=pooled, frames=frames,
                      frame_times_s=times)


def flores_for_whisper(code: str, prefer: Iterable[str] = ()) -> str | None:
    """The FLORES-200 code for a Whisper language code: one of ``prefer`` (the store's languages)
    when one maps to it, else the first in the language table; None when the table has none."""
    from core.languages import known_languages, language

    matches = [lang for lang in known_languages() if language(lang).whisper_code == code]
    preferred = [lang for lang in prefer if lang in matches]
    return (preferred or matches or [None])[0]
