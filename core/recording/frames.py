"""Where in the clip the sentence is carried: the agreement measure per encoder frame.

Per encoder frame (20 ms) and layer, the same agreement measure with one frame's state in place
of the pooled recording: cosine to the transcript's pooled text state in a shared space, else
the correlation of the frame's cosines to the anchors' speech states with the transcript's
cosines to their text states. High where a frame relates to the stored sentences the way the
sentence's text does. Frames are single 20 ms states compared with pooled clips, so values are
lower than the clip's and are read relative to each other (and to the pooled row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.recording.agreement import COSINE, RSA, aligned_layer, anchors_of
from core.recording.clip import ClipStates
from core.recording.correlation import masked_pearson
from core.recording.reference import Reference, unit_rows


@dataclass
class FrameView:
    """Layers x frames agreement of one speech component with the transcript's text state."""

    speech_component: str
    text_component: str
    measure: str
    values: np.ndarray             # (layers, frames)
    times_s: np.ndarray            # (frames,)
    layer_names: list[str]
    pooled: np.ndarray             # (layers,): the same measure for the pooled clip


def frame_agreement(reference: Reference, states: ClipStates, sentence_id: int | None = None
                    ) -> list[FrameView]:
    """Per modality pair with frames: see the module docstring."""
    views = []
    for text_comp, speech_comp in reference.modality_pairs:
        if speech_comp not in states.frames or text_comp not in states.pooled:
            continue
        frames = states.frames[speech_comp]
        n_s, n_t = frames.shape[0], reference.n_layers(text_comp)
        values, pooled, names, measure = [], [], [], RSA
        for ls in range(n_s):
            lt = aligned_layer(n_s, n_t, ls)
            sp, tp = reference.points.get((speech_comp, ls)), reference.points.get((text_comp, lt))
            if sp is None or tp is None:
                continue
            u_t = unit_rows(states.pooled[text_comp][lt])
            f = unit_rows(frames[ls])
            if sp.space == tp.space and sp.unit.shape[1] == tp.unit.shape[1]:
                measure = COSINE
                values.append(f @ u_t)
                pooled.append(float(unit_rows(states.pooled[speech_comp][ls]) @ u_t))
            else:
                anchors = anchors_of(reference, tp, sp)
                keep = anchors.sentence_ids != (-1 if sentence_id is None else sentence_id)
                profile_t = anchors.text @ u_t
                values.append(masked_pearson(f @ anchors.speech.T,
                                             np.broadcast_to(profile_t, (len(f), len(profile_t))),
                                             keep))
                pooled.append(float(masked_pearson(
                    anchors.speech @ unit_rows(states.pooled[speech_comp][ls]), profile_t, keep)[0]))
            names.append(sp.name)
        if values:
            views.append(FrameView(speech_comp, text_comp, measure, np.stack(values),
                                   states.frame_times_s[speech_comp], names, np.array(pooled)))
    return views
