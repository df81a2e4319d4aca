"""A user's own recording against a stored run: its neighbours, its text-vs-speech agreement, its
place in the stored maps and where in the clip the sentence is carried (pure numpy, no streamlit).

Two steps: ``clip_states(adapter, waveform, lang, text)`` runs the model once (speech components on
the clip, text components on what is said); the package's functions compare those states with a
``Reference`` (``load_reference(store, run_id)``: the run's stored pooled states and 2-D maps).

One module per job: ``reference`` (the stored side), ``clip`` (the clip's side), ``neighbours``,
``matching`` (which stored sentence the transcript says), ``agreement`` (with ``correlation``, its
measure across spaces), ``maps``, ``frames``, and ``analysis`` (the page's sections). This package
re-exports their public names, so ``from core import recording`` reads as one API.
"""

from core.recording.agreement import (COSINE, MEASURE_LABEL, N_SHUFFLES, RSA, agreement,
                                      agreement_summary, aligned_layer, prepare_language)
from core.recording.analysis import (ClipAnalysis, NeighbourSection, agreement_section, analyse,
                                     neighbour_section)
from core.recording.clip import ClipStates, clip_states, flores_for_whisper, warm_up
from core.recording.correlation import masked_pearson
from core.recording.frames import FrameView, frame_agreement
from core.recording.maps import map_methods, map_panels_of, place_in_maps, weighted_position
from core.recording.matching import MATCH_MAX_CER, match_sentence
from core.recording.neighbours import (DEFAULT_K, SIMILARITY, Ranking, candidate_points,
                                       nearest_neighbours, neighbour_table, rank_candidates,
                                       sentence_ranks)
from core.recording.reference import Reference, ReferencePoint, load_reference, unit_rows

__all__ = [
    "COSINE", "DEFAULT_K", "MATCH_MAX_CER", "MEASURE_LABEL", "N_SHUFFLES", "RSA", "SIMILARITY",
    "ClipAnalysis", "ClipStates", "FrameView", "NeighbourSection", "Ranking", "Reference",
    "ReferencePoint", "agreement", "agreement_section", "agreement_summary", "aligned_layer",
    "analyse", "candidate_points", "clip_states", "flores_for_whisper", "frame_agreement",
    "load_reference", "map_methods", "map_panels_of", "masked_pearson", "match_sentence",
    "nearest_neighbours", "neighbour_section", "neighbour_table", "place_in_maps",
    "prepare_language", "rank_candidates", "sentence_ranks", "unit_rows", "warm_up",
    "weighted_position",
]
