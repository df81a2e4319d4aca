"""Everything the page shows for one clip, section by section as the page draws them, or in one
call for benchmarks and tests."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.recording.agreement import agreement, agreement_summary
from core.recording.clip import ClipStates
from core.recording.frames import FrameView, frame_agreement
from core.recording.maps import place_in_maps
from core.recording.matching import match_sentence
from core.recording.neighbours import DEFAULT_K, nearest_neighbours, sentence_ranks
from core.recording.reference import Reference


@dataclass
class NeighbourSection:
    """The page's first section: the stored sentence the text matches (if any), the nearest
    stored items per layer and, for a matched sentence, its rank per layer."""

    matched: tuple[int, float, str] | None
    neighbours: pd.DataFrame
    ranks: pd.DataFrame

    @property
    def sentence(self) -> int | None:
        """The matched stored sentence's id (left out of the anchors by the later sections)."""
        return self.matched[0] if self.matched else None


def neighbour_section(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K
                      ) -> NeighbourSection:
    matched = match_sentence(reference, states.text, states.lang)
    sentence = matched[0] if matched else None
    return NeighbourSection(
        matched=matched, neighbours=nearest_neighbours(reference, states, k=k),
        ranks=(sentence_ranks(reference, states, sentence) if sentence is not None
               else pd.DataFrame()))


def agreement_section(reference: Reference, states: ClipStates, sentence: int | None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The agreement rows and their per-layer summary (empty frames without a text path)."""
    rows = agreement(reference, states, sentence)
    return rows, agreement_summary(rows) if not rows.empty else pd.DataFrame()


@dataclass
class ClipAnalysis:
    """Everything the page draws for one clip (the page computes it section by section, drawing
    each before computing the next; this is the same in one call, for benchmarks and tests)."""

    lang: str
    text: str
    matched: tuple[int, float, str] | None
    neighbours: pd.DataFrame
    ranks: pd.DataFrame
    agreement: pd.DataFrame
    summary: pd.DataFrame
    placements: pd.DataFrame
    frames: list[FrameView]


def analyse(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K) -> ClipAnalysis:
    near = neighbour_section(reference, states, k=k)
    rows, summary = agreement_section(reference, states, near.sentence)
    return ClipAnalysis(
        lang=states.lang, text=states.text, matched=near.matched, neighbours=near.neighbours,
        ranks=near.ranks, agreement=rows, summary=summary,
        placements=place_in_maps(reference, states, k=k),
        frames=frame_agreement(reference, states, near.sentence))
