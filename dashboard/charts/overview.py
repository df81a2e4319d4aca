"""Tables and the chart of the Overview page: the corpus per language, the headline counts, a
run's components and how well the model transcribes each language's speech."""

from __future__ import annotations

import html
import json

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import empty_figure
from dashboard.charts.languages import language_order, language_table, level_colour, short_name
from dashboard.charts.theme import FONT, TEMPLATE
from dashboard.stages import stage_summary


def language_summary(items: pd.DataFrame, languages: pd.DataFrame,
                     voices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per corpus language: name, resource level, Whisper hours, item counts, voices (``voices``:
    lang, voice_rank, voice of the store's speech), median and mean speech CER and how many clips
    the CER comes from (a build may transcribe a sample)."""
    table = language_table(languages)
    langs = language_order(languages, list(table.index) + (
        list(items["lang"].dropna().unique()) if "lang" in items else []))
    counts = (items.groupby(["lang", "modality"]).size().unstack(fill_value=0)
              if not items.empty else pd.DataFrame())
    speech = items[items["modality"] == "speech"] if "modality" in items else items.iloc[0:0]
    cer = pd.to_numeric(speech["cer"], errors="coerce").groupby(speech["lang"]) \
        if "cer" in speech else None
    out = pd.DataFrame({"lang": langs})
    out["name"] = out["lang"].map(table["name"]).fillna(out["lang"])
    out["resource level"] = out["lang"].map(table["resource_level"]).fillna("unknown")
    out["whisper hours"] = out["lang"].map(table["whisper_hours"])
    for modality in ("text", "speech"):
        out[f"{modality} items"] = out["lang"].map(
            counts[modality] if modality in counts else pd.Series(dtype=int)).fillna(0).astype(int)
    # The median is the headline: a clip the model loops on scores CER > 1 and drags the mean.
    out["median CER (speech)"] = out["lang"].map(cer.median() if cer is not None else {})
    out["mean CER (speech)"] = out["lang"].map(cer.mean() if cer is not None else {})
    out["CER clips"] = out["lang"].map(cer.count() if cer is not None else {}).fillna(0).astype(int)
    if voices is not None and not voices.empty:
        named = voices.sort_values(["lang", "voice_rank"]).drop_duplicates(["lang", "voice_rank"])
        named = named.assign(short=named["voice"].astype(str).str.split().str[-1])
        out["voices"] = out["lang"].map(named.groupby("lang")["short"].agg(" + ".join)).fillna("")
    return out


def corpus_counts(items: pd.DataFrame, speech_items_all_voices: int | None = None
                  ) -> dict[str, int]:
    """Headline numbers of the corpus in the store: languages, sentences, text and speech items.

    ``items`` holds each sentence's first voice only (what the metrics pair); pass the number of
    speech items over every voice so the headline counts second-voice clips too."""
    if items.empty:
        return {"Languages": 0, "Sentences": 0, "Text items": 0, "Speech items": 0}
    speech = int((items["modality"] == "speech").sum())
    return {"Languages": int(items["lang"].nunique()),
            "Sentences": int(items["sentence_id"].nunique()),
            "Text items": int((items["modality"] == "text").sum()),
            "Speech items": speech if speech_items_all_voices is None else
            int(speech_items_all_voices)}


def components_table(components: pd.DataFrame, layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """A run's components for display: layer names joined into one string, the stages along each
    path ("frontend 1 · encoder 6", from the layers table), the representation space(s) and what
    the component is fed besides its input (conditioning) as readable text."""
    table = components.copy()
    if "layer_names" in table:
        table["layer_names"] = [", ".join(map(str, names)) if names is not None else ""
                                for names in table["layer_names"]]
    if layers is not None and not layers.empty and "component" in table:
        table["stages"] = [stage_summary(layers, c) for c in table["component"]]
        spaces = {str(c): ", ".join(dict.fromkeys(str(v) for v in group["space"].dropna()))
                  for c, group in layers.groupby("component", sort=False)}
        fallback = table["space"] if "space" in table else pd.Series("", index=table.index)
        table["space"] = [spaces.get(str(c)) or f for c, f in zip(table["component"], fallback,
                                                                   strict=True)]
    if "conditioning" in table:
        table["conditioning"] = [_conditioning_text(c) for c in table["conditioning"]]
    first = [c for c in ("component", "modality", "space", "stages", "conditioning", "n_layers",
                         "dim") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def _conditioning_text(conditioning: object) -> str:
    if isinstance(conditioning, str):
        try:
            conditioning = json.loads(conditioning)
        except ValueError:
            return conditioning
    if not conditioning:
        return "none (the input alone)"
    if isinstance(conditioning, dict):
        return "; ".join(f"{k}: {v}" for k, v in conditioning.items())
    return str(conditioning)


def cer_figure(summary: pd.DataFrame, *, unavailable: str | None = None) -> go.Figure:
    """Median character error rate of the speech per language (how well the model hears it).

    ``unavailable``: why the run has no CER (a text-only model, a model that cannot transcribe),
    shown instead of bars."""
    title = "How well the model transcribes the speech (median CER per language)"
    if unavailable:
        return empty_figure(title, html.escape(unavailable))
    data = summary.dropna(subset=["median CER (speech)"]) if not summary.empty else summary
    if data.empty:
        return empty_figure(title, "No character error rates stored (speech was not transcribed).")
    data = data.assign(short=data["name"].astype(str).map(short_name))
    fig = go.Figure()
    for level, group in data.groupby("resource level", sort=False):
        fig.add_trace(go.Bar(
            x=group["short"], y=group["median CER (speech)"], name=f"{level} resource",
            marker_color=level_colour(level), customdata=group[["mean CER (speech)"]],
            hovertemplate="%{x}<br>median CER: %{y:.1%}<br>mean CER: %{customdata[0]:.1%}<extra>"
                          + f"{level} resource</extra>",
        ))
    fig.update_xaxes(title=dict(text="language (ordered by resource level)"),
                     categoryorder="array", categoryarray=list(data["short"]))
    fig.update_yaxes(title=dict(text="median CER (lower = clearer)"), tickformat=".0%",
                     rangemode="tozero")
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=380,
                      barmode="group", bargap=0.25, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))
    return fig
