"""What the precompute tests share: small components for the pair bookkeeping, and a fake model whose
answers are known (its corpus, speech, registry entry and build command line). Test files import the
``fake_setup`` fixture by name (pytest finds it there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core.corpus
from core.models import registry
from core.models.base import Component, Extraction, ModelAdapter, TokenStates, path_points


# ---------------------------------------------------------------------- components for pair bookkeeping
def stack_component(name: str, modality: str, n_layers: int, dim: int, space: str) -> Component:
    """A component of ``n_layers`` plain layer points in one stage (encoder for speech, else decoder)."""
    stage = "encoder" if modality == "speech" else "decoder"
    return Component(name, modality, dim, space,
                     path_points([(stage, [f"{name} {i}" for i in range(n_layers)])]), name)


SPEECH = stack_component("speech_encoder", "speech", 3, 8, "m/shared")
TEXT = stack_component("text_decoder", "text", 3, 8, "m/shared")


# ---------------------------------------------------------------------- a fake model with known answers
# Sentences written for this test. The fake model only looks them up; their content does not matter.
FAKE_CORPUS = {
    "eng_Latn": ["The cat sleeps on the warm windowsill.", "We walked to the station in the rain.",
                 "My brother repairs old bicycles.", "The soup needs a little more salt.",
                 "The children laughed at the red balloon.", "She reads the newspaper every morning."],
    "deu_Latn": ["Die Katze schläft auf der warmen Fensterbank.", "Wir gingen im Regen zum Bahnhof.",
                 "Mein Bruder repariert alte Fahrräder.", "Die Suppe braucht etwas mehr Salz.",
                 "Die Kinder lachten über den roten Ballon.", "Sie liest jeden Morgen die Zeitung."],
    "swh_Latn": ["Paka analala kwenye dirisha lenye joto.", "Tulitembea hadi stesheni mvua ikinyesha.",
                 "Kaka yangu anatengeneza baiskeli za zamani.", "Supu inahitaji chumvi kidogo zaidi.",
                 "Watoto walicheka puto jekundu.", "Yeye husoma gazeti kila asubuhi."],
}
FAKE_LANGS = list(FAKE_CORPUS)
N_FAKE = 6
SAMPLES_PER_POSITION = 1600  # fake clip of sentence p is (p + 1) * 1600 samples long


class FakeAdapter(ModelAdapter):
    """States = sentence vector + language noise that fades with depth, the same for text and speech.

    So at matching depths a sentence's text and speech states are identical (text-speech, same
    language: paired cosine 1, retrieval 1), and cross-language similarity rises with depth. Speech has
    5 layers and text 3, so the build must align speech layers 0, 2, 4 with text layers 0, 1, 2.
    """

    def __init__(self, name: str = "fake-model", device: str | None = None):
        self.name, self.device = name, "cpu"
        rng = np.random.default_rng(0)
        self.sentence = rng.normal(size=(N_FAKE, 8))
        self.noise = {lang: 3 * rng.normal(size=(N_FAKE, 8)) for lang in FAKE_LANGS}
        self.position = {(lang, text): i for lang, texts in FAKE_CORPUS.items()
                         for i, text in enumerate(texts)}
        self.calls: list[tuple[str, int]] = []

    #: both components write into one space, as an LLM fed text or speech does
    space = "fake/shared"

    def components(self) -> list[Component]:
        return [Component("speech_encoder", "speech", 8, self.space,
                          path_points([("encoder", tuple("abcde"))]), "fake speech"),
                Component("text_decoder", "text", 8, self.space,
                          path_points([("decoder", tuple("xyz"))]), "fake text")]

    def state(self, lang: str, position: int, n_layers: int) -> np.ndarray:
        return np.stack([self.sentence[position] + (1 - layer / (n_layers - 1)) * self.noise[lang][position]
                         for layer in range(n_layers)])

    def extract(self, component, inputs, langs, *, sampling_rate=16_000, batch_size=8,
                pooling="mean"):
        comp = self.component(component)
        self.calls.append((component, len(inputs)))
        if comp.modality == "text":
            positions = [self.position[(lang, text)] for text, lang in zip(inputs, langs)]
        else:
            positions = [len(wave) // SAMPLES_PER_POSITION - 1 for wave in inputs]
        pooled = np.stack([self.state(lang, p, comp.n_layers)
                           for lang, p in zip(langs, positions)]).astype(np.float32)
        counts = np.repeat(np.asarray(positions)[:, None] + 1, comp.n_layers, axis=1)
        return Extraction(pooled, counts)

    def token_states(self, component, item, lang, *, sampling_rate=16_000) -> TokenStates:
        raise NotImplementedError

    def supports_language(self, lang):
        return lang in FAKE_CORPUS

    def transcribe(self, waveforms, langs, *, sampling_rate=16_000, batch_size=8, max_new_tokens=None):
        # perfect English, nothing elsewhere
        return [FAKE_CORPUS[lang][len(w) // SAMPLES_PER_POSITION - 1] if lang == "eng_Latn" else ""
                for w, lang in zip(waveforms, langs)]

    def token_counts(self, texts, langs):
        return [len(t.split()) for t in texts]


def fake_speech(corpus, lang, position, *, cache_dir=None, voice_rank=0):
    """Stands in for ``core.corpus.speech_waveform``: the clip's length tells the fake model the sentence."""
    # the second voice is quieter: same length (the fake model reads position from it)
    return np.full((position + 1) * SAMPLES_PER_POSITION, 0.1 / (1 + voice_rank), dtype=np.float32)


@pytest.fixture
def fake_setup(tmp_path, monkeypatch):
    """A line-aligned corpus directory, fake speech, and ``fake-model`` in the registry."""
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for lang, texts in FAKE_CORPUS.items():
        (corpus_dir / f"{lang}.dev").write_text("\n".join(texts) + "\n", encoding="utf-8")
    fake_registry(monkeypatch)
    return corpus_dir


def fake_registry(monkeypatch) -> None:
    """Fake speech and ``fake-model`` in the registry (again, after ``monkeypatch.undo()``)."""
    monkeypatch.setattr(core.corpus, "speech_waveform", fake_speech)
    monkeypatch.setattr(registry, "FAMILIES",
                        (*registry.FAMILIES, registry.Family("fake", (), FakeAdapter, "fake")))
    monkeypatch.setattr(registry, "SHORT_NAMES",
                        (*registry.SHORT_NAMES, registry.ShortName("fake-model", "fake")))


def fake_argv(corpus_dir: Path, out: Path, *extra: str) -> list[str]:
    """A small, quick ``precompute build`` of the fake model on ``corpus_dir`` into ``out``."""
    return ["build", "--corpus", str(corpus_dir), "--langs", ",".join(FAKE_LANGS),
            "--model", "fake-model", "--out", str(out), "--n-permutations", "4", "--n-bootstrap", "6",
            "--umap-n-neighbors", "5", *extra]
