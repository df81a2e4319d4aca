"""Input checks: what a build refuses before it writes anything (a store it cannot add to, a corpus
it could not finish, a model or language it does not know), each with a message saying what to do."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from core.models.base import ModelAdapter
from core.store import Store
from precompute.config import BuildConfig, BuildError

log = logging.getLogger("precompute")


def check_out_store(out: Path) -> None:
    """``--out`` must be absent or a current-schema store (checked before anything is written)."""
    if out.is_dir():
        raise BuildError(f"--out {out} is a directory; name a store file, e.g. {out / 'lens.duckdb'}")
    if out.exists():
        with Store.open(out):  # StoreError / SchemaMismatchError: unreadable, newer or older
            pass


def check_items_fit(out: Path, corpus) -> None:
    """A store holds one corpus: refuse (before any work) a corpus whose sentences differ from the
    store's items under the same (lang, sentence_id)."""
    from core import corpus as corpus_module

    if not out.exists():
        return
    with Store.open(out) as store:
        stored = store.items()
    stored = stored[stored.lang.isin(corpus.langs)]
    if stored.empty:
        return
    position = {sid: i for i, sid in enumerate(corpus.sentence_ids)}
    voices: dict[tuple[str, int], str] = {}
    for row in stored.itertuples():
        i = position.get(int(row.sentence_id))
        if i is None:
            continue
        expected_voice = None
        if row.modality == "speech":
            key = (row.lang, i)
            if key not in voices:
                voices[key] = corpus_module.speech_voice(corpus, row.lang, i)
            expected_voice = voices[key]
        if row.text != corpus.texts[row.lang][i] or (row.modality == "speech"
                                                      and row.voice != expected_voice):
            what = "text" if row.text != corpus.texts[row.lang][i] else "speech"
            raise BuildError(
                f"{out} already holds other {what} for {row.lang} sentence {row.sentence_id} "
                f"({row.text!r}) than this corpus ({corpus.texts[row.lang][i]!r}); a store holds one "
                "corpus: build this one into another --out")


def complete_runs(out: Path) -> set[str]:
    if not out.exists():
        return set()
    with Store.open(out) as store:
        runs = store.runs()
    return set(runs[runs.status == "complete"].run_id)


def check_models(models: Sequence[str]) -> None:
    """Every ``--model`` names a known model (no weights are loaded)."""
    from core.models import registry

    for name in models:
        registry.resolve(name)


def check_corpus(corpus, config: BuildConfig) -> None:
    """Refuse, before anything is written, a corpus the build could not finish (recordings that
    do not read are refused or left out as the corpus is loaded: ``config.readable_corpus``)."""
    from core import audio, languages

    if not corpus.sentence_ids or not corpus.langs:
        raise BuildError(f"corpus {corpus.name!r} ({corpus.source}) has no sentences; give a "
                         "corpus with at least one line per language")
    for lang in corpus.langs:
        try:
            languages.language(lang)
        except KeyError:
            raise BuildError(f"unknown language code {lang!r}: not in the language table "
                             "(data/corpus/languages.tsv); use FLORES-200 codes such as "
                             "eng_Latn or deu_Latn") from None
    synthesised = [lang for lang in corpus.langs if any(p is None for p in corpus.audio_paths[lang])]
    for lang in synthesised:
        try:
            languages.espeak_voice(lang)
        except ValueError as exc:
            raise BuildError(f"cannot make speech for {lang}: {exc}. Drop it with --langs, or use "
                             "a corpus with recordings") from exc
    if synthesised:
        try:
            audio.espeak_version()
        except audio.EspeakError as exc:
            raise BuildError(f"cannot make speech for {', '.join(synthesised)}: {exc}. Install "
                             "espeak-ng, or use a corpus with recordings") from exc


def supported_langs(adapter: ModelAdapter, langs: Sequence[str], policy: str) -> list[str]:
    """The corpus languages the model knows; the others refused (BuildError) or skipped (logged)."""
    missing = [lang for lang in langs if not adapter.supports_language(lang)]
    if missing and policy == "refuse":
        raise BuildError(
            f"model {adapter.name!r} does not support {', '.join(missing)}: its states for them "
            "would be meaningless. Drop them with --langs, or pass --unsupported-langs skip to "
            "build this model's run without them")
    if missing:
        log.warning("%s: skipping unsupported languages %s", adapter.name, ", ".join(missing))
    kept = [lang for lang in langs if lang not in missing]
    if not kept:
        raise BuildError(f"model {adapter.name!r} supports none of the corpus languages")
    return kept
