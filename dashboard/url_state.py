"""Links that reopen the view: each page's widget state kept in the URL query (``st.query_params``).

A copied URL opens the same view on the same store: every widget that goes through ``seed`` writes
its value to the query on every run, and a fresh session (a pasted link) reads its widgets' values
back from it. Widget state wins over the URL (the user just changed it), the URL over what a widget
held on the previous page, that over the default. A parameter that names nothing this store offers
(another store's run, a layer that does not exist, garbage) falls back to the default with a note
(a toast), never an exception.

Why not Streamlit's own ``bind="query-params"``: it drops an invalid value silently, leaves the
default out of the URL (so a link's meaning changes when a store gains a run and the default moves)
and writes each option's display label rather than its id.

The parse and encode functions are pure (tested with hypothesis in tests/test_url_state.py);
``seed``, ``notify`` and ``item_link`` are the thin Streamlit wiring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

#: separates the values of a multi-valued parameter (languages, item ids)
LIST_SEP = ","
#: separates the parts of one tuple-valued option (a component pair)
PART_SEP = "~"
#: separates the ends of an id range (``3-7`` = 3, 4, 5, 6, 7)
RANGE_SEP = "-"
#: a longer raw value is refused as a whole (no legitimate view needs more)
MAX_RAW_CHARS = 20_000
#: item ids one link may carry (ranges count their members)
MAX_IDS = 100_000
_NOTES_KEY = "_url_state_notes"


@dataclass(frozen=True)
class Parsed:
    """A parameter's value after checking it against the options, and why it changed (or None)."""
    value: Any
    note: str | None = None


def encode(value: Any) -> str:
    """One option as it appears in the URL: booleans ``true``/``false``, numbers in decimal, tuples
    with their parts joined by ``~``, strings as they are (the query string escapes them)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, tuple):
        return PART_SEP.join(encode(part) for part in value)
    return str(value)


def encode_many(values: Iterable[Any]) -> str:
    """Several options, comma-separated, in the given order."""
    return LIST_SEP.join(encode(v) for v in values)


def _shown(raw: str, limit: int = 60) -> str:
    text = raw if len(raw) <= limit else raw[:limit] + "…"
    return repr(text)


def _fallback_note(param: str, raw: str, default: Any, reason: str) -> str:
    shown = encode_many(default) if isinstance(default, list) else encode(default)
    return (f"The link's `{param}={_shown(raw)}` {reason}; showing "
            f"{_shown(shown) if shown else 'the default'} instead.")


def parse_one(param: str, raw: str | None, options: Sequence[Any], default: Any) -> Parsed:
    """The option whose ``encode`` equals ``raw``; ``default`` (with a note) when there is none.
    ``raw`` None (the parameter is absent) gives the default without a note."""
    if raw is None:
        return Parsed(default)
    if len(raw) > MAX_RAW_CHARS:
        return Parsed(default, _fallback_note(param, raw, default, "is too long"))
    by_code = {encode(option): option for option in options}
    if raw in by_code:
        return Parsed(by_code[raw])
    return Parsed(default, _fallback_note(param, raw, default,
                                          "is not available in this store or view"))


def parse_many(param: str, raw: str | None, options: Sequence[Any],
               default: Sequence[Any]) -> Parsed:
    """The options listed in ``raw`` (comma-separated), in the link's order, duplicates dropped.
    Values that are not options are dropped with a note; none left gives ``default`` (a list)."""
    default = list(default)
    if raw is None:
        return Parsed(default)
    if len(raw) > MAX_RAW_CHARS:
        return Parsed(default, _fallback_note(param, raw, default, "is too long"))
    by_code = {encode(option): option for option in options}
    codes = [code for code in raw.split(LIST_SEP) if code]
    chosen = list(dict.fromkeys(by_code[code] for code in codes if code in by_code))
    unknown = [code for code in dict.fromkeys(codes) if code not in by_code]
    if not chosen:
        return Parsed(default, _fallback_note(param, raw, default, "names none of the options"))
    if unknown:
        return Parsed(chosen, f"The link's `{param}` names {len(unknown)} unknown value(s) "
                              f"({_shown(LIST_SEP.join(unknown))}), left out.")
    return Parsed(chosen)


def encode_ids(ids: Iterable[int]) -> str:
    """Item ids as a short string: sorted, distinct, runs of consecutive ids as ``a-b``
    (``[1, 2, 3, 7]`` -> ``"1-3,7"``), so a cell's 400 items fit in a link."""
    values = sorted({int(i) for i in ids})
    parts: list[str] = []
    start = previous = None
    for value in values:
        if previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(_id_range(start, previous))
        start = previous = value
    if start is not None:
        parts.append(_id_range(start, previous))
    return LIST_SEP.join(parts)


def _id_range(start: int, end: int | None) -> str:
    return str(start) if end is None or end == start else f"{start}{RANGE_SEP}{end}"


def parse_ids(param: str, raw: str | None) -> Parsed:
    """The item ids of ``encode_ids``'s string, sorted and distinct (an empty list when absent).
    Anything malformed (not a non-negative integer or range, a reversed range, too many ids)
    gives an empty list and a note."""
    if raw is None or raw == "":
        return Parsed([])
    if len(raw) > MAX_RAW_CHARS:
        return Parsed([], _fallback_note(param, raw, [], "is too long"))
    ids: set[int] = set()
    for part in raw.split(LIST_SEP):
        ends = part.split(RANGE_SEP)
        if len(ends) > 2 or not all(end.isascii() and end.isdigit() and len(end) <= 12
                                    for end in ends):
            return Parsed([], _fallback_note(param, raw, [], "is not a list of item ids"))
        low, high = int(ends[0]), int(ends[-1])
        if high < low or len(ids) + high - low + 1 > MAX_IDS:
            return Parsed([], _fallback_note(param, raw, [], "is not a list of item ids"))
        ids.update(range(low, high + 1))
    return Parsed(sorted(ids))


def encode_range(value: tuple[float, float]) -> str:
    """A (low, high) range as ``low~high`` (shortest float text)."""
    return PART_SEP.join(repr(float(v)) for v in value)


def parse_range(param: str, raw: str | None, bounds: tuple[float, float],
                default: tuple[float, float]) -> Parsed:
    """A ``low~high`` range clipped to ``bounds``; ``default`` with a note when it is not two
    finite numbers with low <= high overlapping ``bounds``."""
    if raw is None:
        return Parsed(default)
    parts = raw.split(PART_SEP) if len(raw) <= 100 else []
    try:
        low, high = (float(v) for v in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)) \
            or low > high or high < bounds[0] or low > bounds[1]:
        return Parsed(default, _fallback_note(param, raw, encode_range(default),
                                              "is not a range within this store's values"))
    return Parsed((max(low, bounds[0]), min(high, bounds[1])))


def seed_range(key: str, bounds: tuple[float, float], *, param: str | None = None
               ) -> tuple[float, float]:
    """``seed`` for a range slider over ``bounds`` (default: all of it)."""
    param = param or key
    bounds = (float(bounds[0]), float(bounds[1]))
    if key in st.session_state:
        parsed = parse_range(param, encode_range(st.session_state[key]), bounds, bounds)
    else:
        parsed = parse_range(param, query_value(st.query_params, param), bounds, bounds)
        notify(parsed.note)
    st.session_state[key] = parsed.value
    if query_value(st.query_params, param) != encode_range(parsed.value):
        st.query_params[param] = encode_range(parsed.value)
    return parsed.value


def parse_text(param: str, raw: str | None, *, max_chars: int = 200) -> Parsed:
    """Free text (a search): control characters removed, cut to ``max_chars`` with a note."""
    if raw is None:
        return Parsed("")
    clean = "".join(ch for ch in raw if ch.isprintable())
    if len(clean) > max_chars:
        return Parsed(clean[:max_chars], f"The link's `{param}` was cut to {max_chars} characters.")
    return Parsed(clean)


def seed_text(key: str, *, param: str | None = None, max_chars: int = 200) -> str:
    """``seed`` for a text input (default: empty)."""
    param = param or key
    if key in st.session_state:
        value = parse_text(param, str(st.session_state[key]), max_chars=max_chars).value
    else:
        parsed = parse_text(param, query_value(st.query_params, param), max_chars=max_chars)
        notify(parsed.note)
        value = parsed.value
    st.session_state[key] = value
    write(param, value or None)
    return value


def query_value(query: Mapping[str, Any], param: str) -> str | None:
    """A parameter's raw value from ``st.query_params`` (or a plain mapping); with a repeated
    parameter, its last value. None when absent."""
    if param not in query:
        return None
    value = query[param]
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


# --------------------------------------------------------------------------------- the wiring

_MISSING = object()


def seed(key: str, options: Sequence[Any], default: Any, *, multi: bool = False,
         param: str | None = None, fallback: Any = _MISSING) -> Any:
    """Set widget ``key``'s value before it is drawn, and put it in the URL as ``param`` (``key``).

    Its value: the widget's own (the user just changed it), else the link's, else ``fallback``
    (e.g. what it held on the previous page), else ``default``; a value no longer among
    ``options`` falls back to ``default``. The widget is then drawn with ``key=key`` and no
    ``value``/``index`` of its own. Returns the value."""
    param = param or key
    options = list(options)
    if key in st.session_state:
        value = st.session_state[key]
    else:
        raw = query_value(st.query_params, param)
        value = fallback if fallback is not _MISSING else default
        if raw is not None:
            parsed = (parse_many(param, raw, options, default) if multi
                      else parse_one(param, raw, options, default))
            notify(parsed.note)
            value = parsed.value
    if multi:
        kept = [v for v in (value or []) if v in options]
        value = kept if kept or not value else list(default)
    elif value not in options:
        value = default
    st.session_state[key] = value
    write(param, value, multi=multi)
    return value


def write(param: str, value: Any, *, multi: bool = False) -> None:
    """Put ``value`` in the URL as ``param`` (removed when None)."""
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
        return
    encoded = encode_many(value) if multi else encode(value)
    if query_value(st.query_params, param) != encoded:
        st.query_params[param] = encoded


def notify(note: str | None) -> None:
    """Tell the user a link's parameter was replaced (once per note and session)."""
    if not note:
        return
    shown = st.session_state.setdefault(_NOTES_KEY, set())
    if note not in shown:
        shown.add(note)
        st.toast(note, icon=":material/link_off:")
