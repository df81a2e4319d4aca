"""Transcripts of a run's speech, batch by batch as extraction goes (``BatchTranscriber``), with
the character error rate of each against its text: how well the model hears the speech."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import pandas as pd

from core.models.base import ModelAdapter

log = logging.getLogger("precompute")


class BatchTranscriber:
    """Transcribes speech batch by batch; ``frame`` gives transcript and CER per item seen.

    How well the model hears the (often synthetic) speech. ``max_new_tokens`` caps decoding (a model
    that hallucinates otherwise runs to its length limit); it is passed only to adapters whose
    ``transcribe`` takes it.
    """

    def __init__(self, adapter: ModelAdapter, max_new_tokens: int | None = None,
                 sample: int | None = None) -> None:
        self.adapter = adapter
        self.sample = sample  # only sentences at positions < sample (per language and voice)
        self.extra: dict[str, Any] = {}
        self.transcripts: list[str] = []
        self.batches: list[pd.DataFrame] = []
        if max_new_tokens is not None:
            if "max_new_tokens" in inspect.signature(adapter.transcribe).parameters:
                self.extra["max_new_tokens"] = max_new_tokens
            else:
                log.warning("%s: transcribe takes no max_new_tokens; --max-transcript-tokens "
                            "ignored", adapter.name)

    def __call__(self, batch: pd.DataFrame, waveforms: list[np.ndarray]) -> None:
        if self.sample is not None:
            chosen = (batch.position < self.sample).to_numpy()
            if not chosen.any():
                return
            batch = batch[chosen]
            waveforms = [w for w, keep in zip(waveforms, chosen, strict=True) if keep]
        self.transcripts += self.adapter.transcribe(waveforms, batch.lang.tolist(),
                                                    batch_size=len(batch), **self.extra)
        if "voice_rank" not in batch:
            batch = batch.assign(voice_rank=0)
        self.batches.append(batch[["lang", "modality", "sentence_id", "voice_rank", "text"]])

    def frame(self) -> pd.DataFrame:
        """lang, modality, sentence_id, voice_rank, transcript, cer of every item transcribed, in
        item order."""
        from core.asr_quality import character_error_rate

        seen = pd.concat(self.batches, ignore_index=True) if self.batches else \
            pd.DataFrame(columns=["lang", "modality", "sentence_id", "voice_rank", "text"])
        cer = [_cer(character_error_rate, ref, hyp, lang)
               for ref, hyp, lang in zip(seen.text, self.transcripts, seen.lang, strict=True)]
        out = seen.drop(columns=["text"]).assign(transcript=self.transcripts,
                                                 cer=np.asarray(cer, dtype=np.float64))
        out["voice_rank"] = out.voice_rank.astype("int64")
        return out.sort_values(["lang", "voice_rank", "sentence_id"],
                               kind="stable").reset_index(drop=True)


def _cer(character_error_rate, reference: str, hypothesis: str, lang: str) -> float:
    try:
        return character_error_rate(reference, hypothesis, lang)
    except ValueError:  # nothing left of the reference after normalisation: CER undefined
        return float("nan")
