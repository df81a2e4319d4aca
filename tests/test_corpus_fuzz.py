"""Hypothesis fuzz of the corpus loaders: malformed TSV, odd encodings, odd line breaks, huge lines.

Whatever the files hold, a loader either returns a corpus that keeps its promises (aligned, one
non-empty sentence per line, the lines the file has) or raises ValueError / FileNotFoundError,
which the CLI turns into a one-line error; never anything else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.corpus import load_line_aligned
from core.corpus_fleurs import load_fleurs

EXPECTED = (ValueError, FileNotFoundError)  # UnicodeDecodeError is a ValueError
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

line_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
huge = st.integers(min_value=100_000, max_value=300_000).map(lambda n: "x" * n)
file_bytes = st.one_of(
    st.binary(max_size=300),                                              # anything
    st.lists(st.one_of(line_text, huge), max_size=6).map(                 # text, odd separators
        lambda lines: "\n".join(lines).encode("utf-8")),
    st.lists(line_text, max_size=6).map(lambda lines: "\r\n".join(lines).encode("utf-16")),
    st.lists(line_text, max_size=6).map(lambda lines: "\n".join(lines).encode("latin-1", "replace")),
)


def _check_corpus(corpus) -> None:
    n = len(corpus.sentence_ids)
    assert corpus.sentence_ids == list(range(n))
    for lang in corpus.langs:
        texts = corpus.texts[lang]
        assert len(texts) == n and len(corpus.audio_paths[lang]) == n
        assert all(t and t == t.strip() and "\n" not in t for t in texts)


@FUZZ
@given(eng=file_bytes, deu=file_bytes)
def test_line_aligned_loader_accepts_or_refuses_cleanly(eng, deu):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "eng_Latn.dev").write_bytes(eng)
        (root / "deu_Latn.dev").write_bytes(deu)
        try:
            corpus = load_line_aligned(root)
        except EXPECTED:
            return
        _check_corpus(corpus)
        # a sentence per line of the file: nothing split on characters that are not line breaks
        lines = eng.decode("utf-8-sig").split("\n")
        if lines and lines[-1] in ("", "\r"):
            lines = lines[:-1]
        assert len(corpus) == len(lines)


tsv_field = st.one_of(line_text, st.sampled_from(["0", "1", "-3", "", '"', '"quoted\tfield"',
                                                  "1.wav", "2.wav"]), huge)
tsv_row = st.one_of(
    st.lists(tsv_field, min_size=0, max_size=9).map("\t".join),           # any shape
    st.tuples(st.sampled_from(["0", "1", "2", "x"]), st.sampled_from(["0.wav", "1.wav", "nope"]),
              line_text).map(lambda r: "\t".join([r[0], r[1], r[2], "n", "c", "1600", "MALE"])),
)


@FUZZ
@given(rows_en=st.lists(tsv_row, max_size=5), rows_de=st.lists(tsv_row, max_size=5),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_fleurs_loader_accepts_or_refuses_cleanly(rows_en, rows_de, encoding):
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for locale, rows in (("en_us", rows_en), ("de_de", rows_de)):
            audio = root / locale / "audio" / "test"
            audio.mkdir(parents=True)
            for i in range(2):
                soundfile.write(audio / f"{i}.wav", np.zeros(160, dtype=np.float32), 16_000)
            (root / locale / "test.tsv").write_bytes(
                "\n".join(rows).encode(encoding, errors="replace"))
        try:
            corpus = load_fleurs(root)
        except EXPECTED:
            return
        n = len(corpus.sentence_ids)
        assert n >= 1 and corpus.sentence_ids == sorted(set(corpus.sentence_ids))
        for lang in corpus.langs:
            assert len(corpus.texts[lang]) == n
            assert all(Path(p).is_file() for p in corpus.audio_paths[lang])


@pytest.mark.parametrize("separator", ["\u2028", "\x0b", "\x1c", "\x85"])
def test_characters_that_are_not_newlines_do_not_split_a_sentence(tmp_path, separator):
    for lang in ("eng_Latn", "deu_Latn"):
        (tmp_path / f"{lang}.dev").write_text(f"one{separator}half\ntwo\n", encoding="utf-8")
    corpus = load_line_aligned(tmp_path)
    assert len(corpus) == 2 and corpus.texts["eng_Latn"][0] == f"one{separator}half"


plausible_tsv_row = st.tuples(st.sampled_from(["0", "1"]), st.sampled_from(["0.wav", "1.wav"]),
                              st.sampled_from(["Zero.", "One", " x "])).map(
    lambda r: "\t".join([r[0], r[1], r[2], "n", "c", "160", "FEMALE"]))
noisy_tsv_row = st.lists(st.one_of(line_text, st.sampled_from(["0", "1", "x", "0.wav"])),
                         max_size=9).map("\t".join)  # huge fields: the test above covers them
hub_rows = st.one_of(st.lists(plausible_tsv_row, min_size=1, max_size=4),  # half well-formed
                     st.lists(st.one_of(plausible_tsv_row, noisy_tsv_row), max_size=5))


@FUZZ
@given(rows_en=hub_rows, rows_de=hub_rows,
       members=st.one_of(st.just({"test/0.wav", "test/1.wav"}), st.sets(
           st.sampled_from(["test/0.wav", "test/1.wav", "other/1.wav", "2.wav"]), max_size=3)),
       skip=st.booleans())
def test_fleurs_hub_layout_accepts_or_refuses_cleanly(rows_en, rows_de, members, skip):
    """The hub layout (TSV + audio/test.tar.gz): whatever the TSVs and whichever members the
    archives hold, a corpus whose every clip is in its archive, or a clean error."""
    import io
    import tarfile

    from core import audio_refs

    wav = io.BytesIO()
    import soundfile

    soundfile.write(wav, np.zeros(160, dtype=np.float32), 16_000, format="WAV")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for locale, rows in (("en_us", rows_en), ("de_de", rows_de)):
            folder = root / "data" / locale
            (folder / "audio").mkdir(parents=True)
            with tarfile.open(folder / "audio" / "test.tar.gz", "w:gz") as tar:
                for name in sorted(members):
                    info = tarfile.TarInfo(name)
                    info.size = len(wav.getvalue())
                    tar.addfile(info, io.BytesIO(wav.getvalue()))
            (folder / "test.tsv").write_text("\n".join(rows), encoding="utf-8")
        audio_refs.clear_caches()
        try:
            corpus = load_fleurs(root, missing_audio="skip" if skip else "refuse")
        except EXPECTED:
            event("refused")
            return
        finally:
            audio_refs.clear_caches()
        event("read")
        n = len(corpus.sentence_ids)
        assert n >= 1 and corpus.sentence_ids == sorted(set(corpus.sentence_ids))
        for lang in corpus.langs:
            assert len(corpus.texts[lang]) == n
            for ref in corpus.audio_paths[lang]:
                archive, member = audio_refs.parse_tar_ref(ref)
                assert archive.name == "test.tar.gz" and member in members


cell = st.one_of(st.none(), st.integers(-3, 3), line_text, st.sampled_from(["en_us", "deu_Latn",
                                                                           "de", "zh", "1"]))


plausible_row = st.fixed_dictionaries({                      # mostly well-formed, so many read
    "id": st.integers(0, 2), "lang": st.sampled_from(["en_us", "de"]),
    "text": st.sampled_from(["One.", " Two ", "drei"])})


@FUZZ
@given(rows=st.one_of(st.lists(plausible_row, min_size=2, max_size=6), st.lists(st.one_of(
           plausible_row, st.fixed_dictionaries({"id": cell, "lang": cell, "text": cell})),
           max_size=6)),
       drop=st.sampled_from([None, "id", "lang", "text"]), as_text=st.booleans())
def test_table_loader_accepts_or_refuses_cleanly(rows, drop, as_text):
    """Parquet with any cells (mixed types as text when Arrow cannot hold them as one type), any
    column missing: a corpus that keeps its promises, or a clean error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.corpus_table import TableColumns, TableSpec, load_table_corpus

    columns = {name: [r[name] for r in rows] for name in ("id", "lang", "text") if name != drop}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        try:
            table = pa.table(columns) if not as_text else pa.table(
                {k: [None if v is None else str(v) for v in vs] for k, vs in columns.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = pa.table({k: [None if v is None else str(v) for v in vs]
                              for k, vs in columns.items()})
        pq.write_table(table, path)
        try:
            corpus = load_table_corpus(path, TableSpec(TableColumns(audio=None)))
        except EXPECTED:
            event("refused")
            return
        event("read")
        n = len(corpus.sentence_ids)
        assert n >= 1 and len(set(corpus.sentence_ids)) == n
        assert all(isinstance(i, int) for i in corpus.sentence_ids)
        for lang in corpus.langs:
            texts = corpus.texts[lang]
            assert len(texts) == n and all(t and t == t.strip() for t in texts)
            assert corpus.audio_paths[lang] == [None] * n
