"""Corpus loaders (bundled, line-aligned, FLEURS on disk), validation, and speech for a corpus."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import corpus as corpus_module
from core.audio import SAMPLING_RATE
from core.corpus import (
    ParallelCorpus,
    load_bundled,
    load_line_aligned,
    speech_voice,
    speech_waveforms,
    without_recordings,
)
from core.corpus_fleurs import load_fleurs
from core.languages import espeak_voice, language, resource_level, whisper_code

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture
def flores(shared_data) -> Path:
    """The real FLORES-200 folder (dev, devtest) under ../shared; skips when absent."""
    return shared_data("data", "flores200")


# --- the bundled corpus ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled() -> ParallelCorpus:
    return load_bundled()


def test_bundled_corpus_size_and_levels(bundled):
    assert len(bundled) >= 200  # enough sentences for SVCCA and bootstrap intervals to decide
    assert len(bundled.langs) >= 20
    assert bundled.sentence_ids == list(range(len(bundled)))
    per_level = {level: [lang for lang in bundled.langs if resource_level(lang) == level]
                 for level in ("high", "medium", "low")}
    for level, langs in per_level.items():
        assert len(langs) >= 5, f"only {langs} at level {level}"


def test_bundled_languages_can_be_spoken_and_transcribed(bundled):
    for lang in bundled.langs:
        assert espeak_voice(lang)
        assert whisper_code(lang)
        assert language(lang).whisper_hours is not None, f"{lang}: bundled languages need hours"


def test_bundled_display_order_is_high_to_low(bundled):
    ranks = [("high", "medium", "low").index(resource_level(lang)) for lang in bundled.langs]
    assert ranks == sorted(ranks)
    assert bundled.langs[0] == "eng_Latn"


def test_bundled_text_hygiene(bundled):
    english = bundled.texts["eng_Latn"]
    words = np.array([len(text.split()) for text in english])
    assert words.min() >= 3 and words.max() <= 22, (words.min(), words.max())
    # varied in length, so length is not constant and length controls have something to control
    assert (words <= 6).mean() >= 0.15 and (words >= 13).mean() >= 0.15
    for lang in bundled.langs:
        texts = bundled.texts[lang]
        assert len(set(texts)) == len(texts), f"{lang} repeats a sentence"
        for i, text in enumerate(texts):
            assert text == text.strip() and text, (lang, i)
            assert not re.search(r"\d", text), f"{lang}:{i + 1} has digits; spell numbers out"
            if lang != "eng_Latn":
                assert text != english[i], f"{lang}:{i + 1} is an untranslated copy"


def test_bundled_files_are_utf8_one_sentence_per_line():
    text_dir = corpus_module.BUNDLED_ROOT / "text"
    for path in text_dir.glob("*.txt"):
        raw = path.read_bytes()
        raw.decode("utf-8")  # raises if not UTF-8
        assert not raw.startswith(b"\xef\xbb\xbf"), f"{path.name} has a byte-order mark"
        assert b"\r" not in raw, f"{path.name} has Windows line endings"
        assert raw.endswith(b"\n") and b"\n\n" not in raw, path.name


def test_bundled_sentences_are_not_copied_from_flores(bundled, flores):
    for lang in bundled.langs:
        flores_file = flores / "devtest" / f"{lang}.devtest"
        if not flores_file.is_file():
            continue
        flores_lines = set(flores_file.read_text(encoding="utf-8").splitlines())
        copied = [text for text in bundled.texts[lang] if text in flores_lines]
        assert not copied, f"{lang}: lines found in FLORES: {copied[:3]}"


def test_bundled_subset(bundled):
    small = bundled.subset(["deu_Latn", "eng_Latn"], n_sentences=5)
    assert small.langs == ["deu_Latn", "eng_Latn"]
    assert small.sentence_ids == [0, 1, 2, 3, 4]
    assert small.texts["eng_Latn"] == bundled.texts["eng_Latn"][:5]
    assert small.audio_paths["deu_Latn"] == [None] * 5
    with pytest.raises(KeyError, match="available"):
        bundled.subset(["xxx_Latn"])
    with pytest.raises(ValueError, match="n_sentences"):
        bundled.subset(n_sentences=10_000)


def test_load_bundled_from_other_root_reports_uneven_files(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "eng_Latn.txt").write_text("One.\nTwo.\nThree.\n", encoding="utf-8")
    (tmp_path / "text" / "deu_Latn.txt").write_text("Eins.\nZwei.\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_bundled(tmp_path)
    message = str(info.value)
    assert "deu_Latn.txt: 2 lines" in message and "eng_Latn.txt: 3 lines" in message


# --- ParallelCorpus validation --------------------------------------------------------------------

def test_parallel_corpus_rejects_misaligned_lists():
    with pytest.raises(ValueError, match=r"texts\['b'\] has 1 entries but there are 2"):
        ParallelCorpus("t", ["a", "b"], [0, 1], {"a": ["x", "y"], "b": ["x"]})
    with pytest.raises(ValueError, match="audio_paths"):
        ParallelCorpus("t", ["a"], [0, 1], {"a": ["x", "y"]}, {"a": [None]})
    with pytest.raises(ValueError, match="repeat"):
        ParallelCorpus("t", ["a", "a"], [0], {"a": ["x"]})
    with pytest.raises(ValueError, match="texts are for"):
        ParallelCorpus("t", ["a", "b"], [0], {"a": ["x"]})


# --- line-aligned (FLORES-style) folders ----------------------------------------------------------

def test_load_line_aligned_tmp_dir(tmp_path):
    (tmp_path / "eng_Latn.dev").write_text("Good morning.\nGood night.\nThank you.\n", encoding="utf-8")
    (tmp_path / "fra_Latn.dev").write_text("Bonjour.\nBonne nuit.\nMerci.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored\n", encoding="utf-8")
    loaded = load_line_aligned(tmp_path)
    assert loaded.langs == ["eng_Latn", "fra_Latn"]
    assert loaded.texts["fra_Latn"] == ["Bonjour.", "Bonne nuit.", "Merci."]
    assert loaded.sentence_ids == [0, 1, 2]
    two = load_line_aligned(tmp_path, langs=["fra_Latn"], n_sentences=2)
    assert two.langs == ["fra_Latn"] and two.texts["fra_Latn"] == ["Bonjour.", "Bonne nuit."]
    with pytest.raises(FileNotFoundError, match="deu_Latn.dev"):
        load_line_aligned(tmp_path, langs=["deu_Latn"])


def test_load_line_aligned_rejects_blank_line_and_uneven_counts(tmp_path):
    (tmp_path / "eng_Latn.dev").write_text("One.\n\nThree.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"eng_Latn.dev:2 is empty"):
        load_line_aligned(tmp_path)
    (tmp_path / "eng_Latn.dev").write_text("One.\nTwo.\nThree.\n", encoding="utf-8")
    (tmp_path / "spa_Latn.dev").write_text("Uno.\nDos.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"eng_Latn.dev: 3 lines.*spa_Latn.dev: 2 lines"):
        load_line_aligned(tmp_path)


def test_load_line_aligned_real_flores_devtest(flores):
    devtest = load_line_aligned(flores / "devtest", suffix=".devtest",
                                langs=["eng_Latn", "deu_Latn", "zho_Hans"], n_sentences=12)
    assert devtest.langs == ["eng_Latn", "deu_Latn", "zho_Hans"]
    assert len(devtest) == 12 and devtest.name == "devtest"
    assert all(devtest.texts[lang][0] for lang in devtest.langs)
    every = load_line_aligned(flores / "devtest", suffix=".devtest")
    assert len(every.langs) == 38 and len(every) == 1012
    assert every.langs[0] == "eng_Latn"  # display order: most Whisper hours first


def test_load_line_aligned_real_flores_dev(flores):
    dev = load_line_aligned(flores / "dev", suffix=".dev", n_sentences=3)
    assert len(dev.langs) == 12 and len(dev) == 3


# --- FLEURS on disk -------------------------------------------------------------------------------

def _write_fleurs_locale(root: Path, locale: str, rows: list[tuple[int, str, str]], split="test"):
    """rows: (id, file name, raw transcription); writes the TSV and a short tone per clip."""
    folder = root / locale
    audio_dir = folder / "audio" / split
    audio_dir.mkdir(parents=True)
    lines = []
    for number, (sentence_id, file_name, raw) in enumerate(rows):
        samples = 0.1 * np.sin(np.linspace(0, 200 * (number + 1), 8_000)).astype(np.float32)
        sf.write(audio_dir / file_name, samples, 16_000)
        lines.append("\t".join([str(sentence_id), file_name, raw, raw.lower(),
                                "a|b", str(len(samples)), "FEMALE"]))
    (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def fleurs_root(tmp_path) -> Path:
    root = tmp_path / "fleurs"
    _write_fleurs_locale(root, "en_us", [
        (7, "en_7a.wav", "Seven, first speaker."),
        (3, "en_3.wav", "Three."),
        (7, "en_7b.wav", "Seven, second speaker."),
        (9, "en_9.wav", "Nine only in English."),
        (5, "en_5.wav", "Five."),
    ])
    _write_fleurs_locale(root, "de_de", [
        (5, "de_5.wav", "Fünf."),
        (3, "de_3.wav", "Drei."),
        (7, "de_7.wav", "Sieben."),
    ])
    _write_fleurs_locale(root, "cmn_hans_cn", [
        (3, "zh_3.wav", "三。"),
        (7, "zh_7.wav", "七。"),
        (4, "zh_4.wav", "四。"),
    ])
    return root


def test_load_fleurs_keeps_shared_ids_sorted_first_clip(fleurs_root):
    fleurs = load_fleurs(fleurs_root, langs=["eng_Latn", "deu_Latn"])
    assert fleurs.langs == ["eng_Latn", "deu_Latn"]
    assert fleurs.sentence_ids == [3, 5, 7]
    assert fleurs.texts["eng_Latn"] == ["Three.", "Five.", "Seven, first speaker."]
    assert fleurs.texts["deu_Latn"] == ["Drei.", "Fünf.", "Sieben."]
    assert Path(fleurs.audio_paths["eng_Latn"][2]).name == "en_7a.wav"
    assert fleurs.name == "fleurs-test" and "FLEURS" in fleurs.source


def test_load_fleurs_all_locales_and_limits(fleurs_root):
    fleurs = load_fleurs(fleurs_root)
    assert fleurs.langs == ["eng_Latn", "zho_Hans", "deu_Latn"]  # display order, FLORES codes
    assert fleurs.sentence_ids == [3, 7]
    assert load_fleurs(fleurs_root, langs=["de_de", "cmn_hans_cn"], n_sentences=1).sentence_ids == [3]
    with pytest.raises(FileNotFoundError, match="fra_Latn"):
        load_fleurs(fleurs_root, langs=["fra_Latn"])
    with pytest.raises(FileNotFoundError, match="train.tsv"):
        load_fleurs(fleurs_root, split="train")


def test_load_fleurs_audio_loads_at_16k(fleurs_root):
    fleurs = load_fleurs(fleurs_root, langs=["deu_Latn"])
    waves = speech_waveforms(fleurs, "deu_Latn", progress=False)
    assert len(waves) == 3 and all(w.dtype == np.float32 for w in waves)
    assert all(len(w) == 8_000 for w in waves)
    assert speech_voice(fleurs, "deu_Latn", 0) == "recording"


def test_load_fleurs_reports_missing_audio_and_bad_rows(fleurs_root):
    (fleurs_root / "de_de" / "audio" / "test" / "de_7.wav").unlink()
    with pytest.raises(FileNotFoundError, match="de_7.wav"):
        load_fleurs(fleurs_root, langs=["deu_Latn"])
    (fleurs_root / "en_us" / "test.tsv").write_text("1\ta.wav\tonly three columns\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.tsv:1 has 3 columns"):
        load_fleurs(fleurs_root, langs=["eng_Latn"])


def test_load_fleurs_without_shared_ids(tmp_path):
    root = tmp_path / "fleurs"
    _write_fleurs_locale(root, "en_us", [(1, "a.wav", "One.")])
    _write_fleurs_locale(root, "fr_fr", [(2, "b.wav", "Deux.")])
    with pytest.raises(ValueError, match="no FLEURS id is shared"):
        load_fleurs(root)


# --- speech for any corpus ------------------------------------------------------------------------

def test_speech_waveforms_synthesises_missing_recordings(fleurs_root, monkeypatch):
    calls = []

    def fake_synthesize(text, voice, *, cache_dir=None):
        calls.append((text, voice))
        return np.ones(1_600, dtype=np.float32)

    monkeypatch.setattr(corpus_module.audio, "synthesize", fake_synthesize)
    synthetic = without_recordings(load_fleurs(fleurs_root, langs=["deu_Latn"]))
    waves = speech_waveforms(synthetic, "deu_Latn", progress=False)
    assert calls == [("Drei.", "de"), ("Fünf.", "de"), ("Sieben.", "de")]
    assert [len(w) for w in waves] == [1_600] * 3


@needs_espeak
def test_speech_for_bundled_corpus_with_espeak(bundled, tmp_path):
    two = bundled.subset(["swh_Latn"], n_sentences=2)
    waves = speech_waveforms(two, "swh_Latn", cache_dir=tmp_path, progress=False)
    assert len(waves) == 2
    for wave in waves:
        assert wave.dtype == np.float32 and 1.0 < len(wave) / SAMPLING_RATE < 8.0
    assert speech_voice(two, "swh_Latn", 0).startswith("espeak-ng ")
    assert speech_voice(two, "swh_Latn", 0).endswith(" sw")


@needs_espeak
def test_second_voices_are_recorded_and_sound_different(bundled, tmp_path):
    """A language with a second voice speaks each sentence twice, differently; recordings and
    languages without one have one voice."""
    from core.corpus import speech_waveform, voice_count

    one = bundled.subset(["deu_Latn", "fra_Latn"], n_sentences=1)
    assert voice_count(one, "deu_Latn", 2) == 2 and voice_count(one, "fra_Latn", 2) == 1
    assert voice_count(one, "deu_Latn", 1) == 1
    first, second = (speech_voice(one, "deu_Latn", 0, rank) for rank in (0, 1))
    assert first.endswith(" de") and second.endswith(" de+f3")
    a, b = (speech_waveform(one, "deu_Latn", 0, cache_dir=tmp_path, voice_rank=rank)
            for rank in (0, 1))
    assert a.shape != b.shape or not np.allclose(a, b)
    # another voice: different pitch, so the spectra differ well beyond the amplitude
    spectrum = [np.abs(np.fft.rfft(w[:16000], n=16000)) for w in (a, b)]
    peak = [int(np.argmax(s[60:400])) + 60 for s in spectrum]  # fundamental region, 60-400 Hz
    assert peak[0] != peak[1]
    with pytest.raises(ValueError, match="no espeak-ng voice number 2"):
        speech_waveform(one, "fra_Latn", 0, cache_dir=tmp_path, voice_rank=1)
