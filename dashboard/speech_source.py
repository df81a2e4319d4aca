"""Where a store's speech comes from: recorded clips or a synthesiser (pure, no streamlit).

Every speech item records who speaks it in ``items.voice`` (``core.corpus.speech_voice``):
``"recording"`` for a recorded clip, else the synthesiser, its version and voice, e.g.
``"espeak-ng 1.51 de+f3"``. Results on synthetic speech need not carry over to recorded speech
(one clean voice per language, no noise, no accent), so every page that shows speech results
says when its speech is synthetic (``speech_notice``), and the Overview counts both kinds per
language (``speech_sources``).

Input of both: one row per (lang, voice) with ``n_items``, the number of speech items (every
voice rank) of that language spoken by that voice (``dashboard.state.speech_voices``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

#: ``items.voice`` of a recorded clip
RECORDING = "recording"
#: what a speech item is, from its voice
RECORDED, SYNTHESISED, UNKNOWN = "recorded", "synthesised", "unknown"
#: languages named in a notice about partly synthetic speech, at most
MAX_NAMED_LANGUAGES = 6


def source_of(voice: object) -> str:
    """``"recorded"``, ``"synthesised"`` or ``"unknown"`` (no voice recorded) for one item."""
    if voice is None or (isinstance(voice, float) and pd.isna(voice)) or not str(voice).strip():
        return UNKNOWN
    return RECORDED if str(voice).strip() == RECORDING else SYNTHESISED


def synthesiser_of(voice: object) -> str:
    """The synthesiser (and version) of a synthesised item's voice: ``"espeak-ng 1.51"`` for
    ``"espeak-ng 1.51 de+f3"``; a bare voice name with no synthesiser gives ``"a synthesiser"``."""
    words = str(voice).split()
    return " ".join(words[:-1]) if len(words) > 1 else "a synthesiser"


def _with_sources(voices: pd.DataFrame, langs: Iterable[str] | None) -> pd.DataFrame:
    frame = voices if langs is None else voices[voices["lang"].isin(list(langs))]
    return frame.assign(source=frame["voice"].map(source_of),
                        n_items=frame["n_items"].astype(int))


def speech_sources(voices: pd.DataFrame, order: Sequence[str] | None = None,
                   names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per language with speech: how many speech items are recordings, how many synthesised
    (and of unknown source, when any), and which synthesiser voices made them.

    ``order``: languages in display order (others follow, sorted); ``names``: display names."""
    columns = ["lang", "language", RECORDED, SYNTHESISED, "synthesised by"]
    if voices.empty:
        return pd.DataFrame(columns=columns)
    frame = _with_sources(voices, None)
    counts = frame.pivot_table(index="lang", columns="source", values="n_items", aggfunc="sum",
                               fill_value=0)
    present = list(counts.index)
    langs = [lang for lang in (order or []) if lang in present]
    langs += sorted(lang for lang in present if lang not in langs)
    synthetic = frame[frame["source"] == SYNTHESISED]
    made_by = {lang: _made_by(rows["voice"]) for lang, rows in synthetic.groupby("lang", sort=False)}
    out = pd.DataFrame({"lang": langs})
    out["language"] = [(names or {}).get(lang, lang) for lang in langs]
    for source in (RECORDED, SYNTHESISED, UNKNOWN):
        if source in counts or source != UNKNOWN:
            out[source] = [int(counts.loc[lang, source]) if source in counts else 0
                           for lang in langs]
    out["synthesised by"] = [made_by.get(lang, "") for lang in langs]
    return out


def speech_notice(voices: pd.DataFrame, langs: Iterable[str] | None = None) -> str:
    """One sentence for a page that shows speech results: whether its speech is synthetic, by
    which synthesiser(s) and how many voices, and how many of its speech items (``langs``: the
    languages it shows; None: all). Empty when none of that speech is synthetic (all recorded,
    or no speech at all)."""
    if voices.empty:
        return ""
    frame = _with_sources(voices, langs)
    total = int(frame["n_items"].sum())
    synthetic = frame[frame["source"] == SYNTHESISED]
    n_synthetic = int(synthetic["n_items"].sum())
    if n_synthetic == 0:
        return ""
    engines = synthetic.groupby(synthetic["voice"].map(synthesiser_of), sort=True)["voice"]
    made_by = "; ".join(f"{engine}, {_count(group.nunique(), 'voice')}"
                        for engine, group in engines)
    if n_synthetic == total:
        return (f"Speech here is synthetic ({made_by}): {n_synthetic:,} of {total:,} speech "
                "items; results may differ on recorded speech.")
    recorded = frame[frame["source"] == RECORDED]
    unknown = frame[frame["source"] == UNKNOWN]
    rest = [f"{int(part['n_items'].sum()):,} {label} ({_languages(part['lang'])})"
            for part, label in ((recorded, "recorded"), (unknown, "of unknown source"))
            if not part.empty]
    return (f"Speech here is partly synthetic ({made_by}): {n_synthetic:,} of {total:,} speech "
            f"items ({_languages(synthetic['lang'])}); the rest: {' and '.join(rest)}. Results "
            "on the synthetic part may differ on recorded speech.")


def _languages(langs: pd.Series) -> str:
    """"deu_Latn, eng_Latn" or, past ``MAX_NAMED_LANGUAGES``, the first ones "and 13 more"."""
    named = sorted(set(langs))
    shown = ", ".join(named[:MAX_NAMED_LANGUAGES])
    extra = len(named) - MAX_NAMED_LANGUAGES
    return shown + (f" and {extra} more" if extra > 0 else "")


def _made_by(voices: pd.Series) -> str:
    """"espeak-ng 1.51 (de, de+f3)": each synthesiser with its voices' names."""
    engines = voices.groupby(voices.map(synthesiser_of), sort=True)
    return "; ".join(f"{engine} ({', '.join(sorted({str(v).split()[-1] for v in group}))})"
                     for engine, group in engines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
