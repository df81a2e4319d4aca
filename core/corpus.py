"""Parallel corpora: the same sentences in several languages, as text and (optionally) recorded speech.

Every source shares one shape (:class:`ParallelCorpus`): the bundled corpus written for this
project (``data/corpus``) and any line-aligned FLORES-style folder (here), FLEURS on disk or from the
hub (``core.corpus_fleurs``, ``core.corpus_hub``), Parquet / Arrow speech corpora
(``core.corpus_table``). Where a corpus has no recording (``audio_paths`` entry ``None``) speech is
synthesised with espeak-ng, see :func:`speech_waveforms`; a recording is a file path or a reference
to a clip inside an archive or table (``core.audio_refs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core import audio, audio_refs, languages
from core.corpus_files import SourceFile, source_file

BUNDLED_ROOT = Path(__file__).resolve().parents[1] / "data" / "corpus"
_LEVEL_ORDER = {level: rank for rank, level in enumerate(languages.RESOURCE_LEVELS)}


@dataclass
class ParallelCorpus:
    """Aligned sentences: position i of every language's list is the same sentence."""

    name: str
    langs: list[str]
    sentence_ids: list[int]
    texts: dict[str, list[str]]
    audio_paths: dict[str, list[str | None]] = field(default_factory=dict)
    source: str = ""
    #: the files it was read from, with checksums and row counts (recorded in each run's config)
    files: list[SourceFile] = field(default_factory=list)
    #: sentence ids left out while reading, by reason (e.g. a clip that does not decode, where the
    #: user asked for skipping); recorded in each run's config
    dropped: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"corpus {self.name!r}: languages repeat in {self.langs}")
        if len(set(self.sentence_ids)) != len(self.sentence_ids):
            raise ValueError(f"corpus {self.name!r}: sentence_ids repeat")
        if set(self.texts) != set(self.langs):
            raise ValueError(
                f"corpus {self.name!r}: texts are for {sorted(self.texts)} but langs are {self.langs}"
            )
        for lang in self.langs:  # no recordings given: every item is synthesised
            self.audio_paths.setdefault(lang, [None] * len(self.sentence_ids))
        if set(self.audio_paths) != set(self.langs):
            raise ValueError(
                f"corpus {self.name!r}: audio_paths are for {sorted(self.audio_paths)} "
                f"but langs are {self.langs}"
            )
        n = len(self.sentence_ids)
        for lang in self.langs:
            for what, values in (("texts", self.texts[lang]), ("audio_paths", self.audio_paths[lang])):
                if len(values) != n:
                    raise ValueError(
                        f"corpus {self.name!r}: {what}[{lang!r}] has {len(values)} entries "
                        f"but there are {n} sentence_ids"
                    )

    def __len__(self) -> int:
        return len(self.sentence_ids)

    def subset(self, langs: Sequence[str] | None = None,
               n_sentences: int | None = None) -> ParallelCorpus:
        """The first ``n_sentences`` sentences in ``langs`` (in that order); ``None`` keeps all."""
        chosen = list(self.langs if langs is None else langs)
        missing = [lang for lang in chosen if lang not in self.texts]
        if missing:
            raise KeyError(
                f"corpus {self.name!r} has no language {', '.join(missing)} "
                f"(available: {', '.join(self.langs)})"
            )
        n = checked_count(n_sentences, len(self), self.name)
        return ParallelCorpus(
            name=self.name,
            langs=chosen,
            sentence_ids=self.sentence_ids[:n],
            texts={lang: self.texts[lang][:n] for lang in chosen},
            audio_paths={lang: self.audio_paths[lang][:n] for lang in chosen},
            source=self.source, files=list(self.files), dropped=dict(self.dropped),
        )

    def without_sentences(self, sentence_ids: Sequence[int], reason: str) -> ParallelCorpus:
        """The corpus less ``sentence_ids`` in every language (alignment kept), noted in
        ``dropped`` under ``reason``."""
        gone = set(sentence_ids)
        keep = [i for i, sid in enumerate(self.sentence_ids) if sid not in gone]
        dropped = dict(self.dropped)
        dropped[reason] = sorted({*dropped.get(reason, []), *gone})
        return ParallelCorpus(
            name=self.name, langs=list(self.langs),
            sentence_ids=[self.sentence_ids[i] for i in keep],
            texts={lang: [self.texts[lang][i] for i in keep] for lang in self.langs},
            audio_paths={lang: [self.audio_paths[lang][i] for i in keep] for lang in self.langs},
            source=self.source, files=list(self.files), dropped=dropped,
        )


def checked_count(n_sentences: int | None, available: int, name: str) -> int:
    """How many sentences to take: ``n_sentences`` (checked against what ``available``), or all."""
    if n_sentences is None:
        return available
    if n_sentences <= 0:
        raise ValueError(f"n_sentences must be positive, got {n_sentences}")
    if n_sentences > available:
        raise ValueError(
            f"corpus {name!r} has {available} aligned sentences; cannot take n_sentences={n_sentences}"
        )
    return n_sentences


def display_order(langs: Sequence[str]) -> list[str]:
    """High- to low-resource, most Whisper hours first; languages not in the table go last."""
    def key(lang: str) -> tuple[int, float, str]:
        try:
            entry = languages.language(lang)
        except KeyError:
            return (len(_LEVEL_ORDER), 0.0, lang)
        hours = entry.whisper_hours if entry.whisper_hours is not None else -1.0
        return (_LEVEL_ORDER[entry.resource_level], -hours, lang)

    return sorted(langs, key=key)


def _read_lines(path: Path) -> list[str]:
    """One sentence per line; a blank line is an error (it would silently shift the alignment)."""
    # "\n" only (and "\r\n"): str.splitlines would also break at U+2028, \x0b, \x1c, \x85...,
    # which can occur inside a sentence and would shift every later line
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    if lines and lines[-1] in ("", "\r"):
        lines.pop()  # the final newline ends the last line; it does not start another
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"{path}:{number} is empty; every line must hold one sentence")
    return [line.strip() for line in lines]


def _check_same_length(texts_by_file: dict[Path, list[str]]) -> None:
    counts = {path: len(lines) for path, lines in texts_by_file.items()}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{path.name}: {count} lines" for path, count in sorted(counts.items()))
        raise ValueError(f"parallel files must have the same number of lines, but {listing}")


def _load_files(files: dict[str, Path], name: str, source: str,
                n_sentences: int | None) -> ParallelCorpus:
    by_file = {path: _read_lines(path) for path in files.values()}
    _check_same_length(by_file)
    available = len(next(iter(by_file.values())))
    n = checked_count(n_sentences, available, name)
    return ParallelCorpus(
        name=name,
        langs=list(files),
        sentence_ids=list(range(n)),
        texts={lang: by_file[path][:n] for lang, path in files.items()},
        source=source,
        files=[source_file(path, "text", rows=len(by_file[path])) for path in files.values()],
    )


def load_line_aligned(directory: Path | str, suffix: str = ".dev",
                      langs: Sequence[str] | None = None,
                      n_sentences: int | None = None) -> ParallelCorpus:
    """FLORES-style folder of ``<lang><suffix>`` files where line i is the same sentence everywhere."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    available = {p.name[: -len(suffix)]: p for p in sorted(directory.glob(f"*{suffix}")) if p.is_file()}
    if not available:
        raise FileNotFoundError(f"no *{suffix} files in {directory}")
    if langs is None:
        chosen = display_order(list(available))
    else:
        chosen = list(langs)
        missing = [lang for lang in chosen if lang not in available]
        if missing:
            raise FileNotFoundError(
                f"no {', '.join(m + suffix for m in missing)} in {directory} "
                f"(available: {', '.join(sorted(available))})"
            )
    return _load_files(
        {lang: available[lang] for lang in chosen},
        name=directory.name,
        source=f"line-aligned text files {directory}/*{suffix}",
        n_sentences=n_sentences,
    )


def load_bundled(root: Path | str | None = None, langs: Sequence[str] | None = None,
                 n_sentences: int | None = None) -> ParallelCorpus:
    """The parallel corpus written for this project (``data/corpus/text/<lang>.txt``)."""
    root = Path(root) if root is not None else BUNDLED_ROOT
    corpus = load_line_aligned(root / "text", suffix=".txt", langs=langs, n_sentences=n_sentences)
    corpus.name = "bundled"
    corpus.source = (
        f"crossmodal-lens bundled corpus ({root}), written for this project; "
        "speech synthesised with espeak-ng"
    )
    return corpus


# --- speech ---------------------------------------------------------------------------------------

def without_recordings(corpus: ParallelCorpus) -> ParallelCorpus:
    """The same corpus with every item marked for espeak-ng synthesis (e.g. to compare with FLEURS)."""
    return ParallelCorpus(
        name=f"{corpus.name}-synthetic",
        langs=list(corpus.langs),
        sentence_ids=list(corpus.sentence_ids),
        texts={lang: list(texts) for lang, texts in corpus.texts.items()},
        audio_paths={lang: [None] * len(corpus) for lang in corpus.langs},
        source=f"{corpus.source}; speech synthesised with espeak-ng",
        files=[f for f in corpus.files if f.role in ("text", "tsv", "table")],
        dropped=dict(corpus.dropped),
    )


def voice_count(corpus: ParallelCorpus, lang: str, max_voices: int = 1) -> int:
    """How many voices ``lang`` is spoken in (at most ``max_voices``): 1 for recordings (one
    speaker per clip, as recorded), else the language table's espeak-ng voices (a second voice
    where it has ``espeak_voice_2``)."""
    if any(path is not None for path in corpus.audio_paths[lang]):
        return 1
    return len(languages.espeak_voices(lang, max_voices))


def speech_voice(corpus: ParallelCorpus, lang: str, position: int, voice_rank: int = 0) -> str:
    """Who speaks item ``position``: ``espeak-ng <version> <voice>`` or ``recording``;
    ``voice_rank`` 1 is the language's second espeak-ng voice."""
    if corpus.audio_paths[lang][position] is not None:
        if voice_rank:
            raise ValueError(f"{lang} sentence {position} is a recording: it has one voice")
        return "recording"
    return f"espeak-ng {audio.espeak_version()} {_espeak_voice(lang, voice_rank)}"


def _espeak_voice(lang: str, voice_rank: int) -> str:
    voices = languages.espeak_voices(lang, voice_rank + 1)
    if voice_rank >= len(voices):
        raise ValueError(f"{lang} has no espeak-ng voice number {voice_rank + 1} in the language "
                         "table (column espeak_voice_2)")
    return voices[voice_rank]


def speech_waveform(corpus: ParallelCorpus, lang: str, position: int, *,
                    cache_dir: Path | str | None = None, voice_rank: int = 0) -> np.ndarray:
    """16 kHz mono float32 speech of one sentence (``position`` in ``corpus.sentence_ids``):
    the recording where the corpus has one, otherwise espeak-ng synthesis (cached on disk) in the
    language's voice number ``voice_rank`` + 1."""
    path = corpus.audio_paths[lang][position]
    if path is not None:
        if voice_rank:
            raise ValueError(f"{lang} sentence {position} is a recording: it has one voice")
        if audio_refs.is_reference(path):
            return audio_refs.decode_clip(path)
        return audio.load_audio(path)
    return audio.synthesize(corpus.texts[lang][position], _espeak_voice(lang, voice_rank),
                            cache_dir=cache_dir)


def speech_waveforms(corpus: ParallelCorpus, lang: str, *, cache_dir: Path | str | None = None,
                     progress: bool = True) -> list[np.ndarray]:
    """16 kHz mono float32 speech for every sentence of ``lang`` (see ``speech_waveform``; all in
    memory: precompute streams ``speech_waveform`` instead)."""
    return [speech_waveform(corpus, lang, position, cache_dir=cache_dir)
            for position in tqdm(range(len(corpus)), desc=f"speech {lang}", disable=not progress,
                                 leave=False)]
