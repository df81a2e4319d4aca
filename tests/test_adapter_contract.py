"""The adapter interface v2 contract, checked the same way for every family on its tiny random
configuration (seconds each): what components declare, that padding never changes a pooled vector,
that pooling is a function of the token-level states, last-token pooling, unknown languages, and
that two different models never return identical states.

Each family's own test file checks what is particular to it (hooks, length-adaptor formulas,
templates); this file keeps the families honest against one another. The families are every
registry short name with ``random: True`` (``tiny_random_models``), so a new family's tiny
configuration is held to the contract as soon as it is registered.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.models import load_model
from core.models.base import (
    POOLINGS,
    STAGES,
    UnsupportedLanguageError,
    pool_token_states,
)

from tests.conftest import tiny_random_models

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODELS = tiny_random_models()
#: pooled vectors computed two ways (alone / batched, pooled / from token states) agree this closely
ATOL, RTOL = 1e-5, 0
LANG = "eng_Latn"
SHORT_TEXT = "The cat sleeps."
LONG_TEXT = ("My brother repairs old bicycles in the garage behind our house every Saturday "
             "morning, and the neighbours bring him theirs too.")


def _clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module", params=TINY_MODELS)
def adapter(request):
    return load_model(request.param, device="cpu")


def _inputs(adapter, component, which: str):
    comp = adapter.component(component)
    if comp.modality == "text":
        return {"short": SHORT_TEXT, "long": LONG_TEXT}[which]
    return {"short": _clip(1.2, 0), "long": _clip(3.5, 1)}[which]


def _extra(adapter, component, n: int, which=("short",)):
    if adapter.reads_reference_text(component):
        texts = {"short": SHORT_TEXT, "long": LONG_TEXT}
        return {"targets": [texts[w] for w in which][:n]}
    return {}


def test_components_declare_stages_depths_and_spaces(adapter):
    comps = adapter.components()
    assert comps and len({c.name for c in comps}) == len(comps)
    for comp in comps:
        assert comp.n_layers == len(comp.layers) >= 2
        assert set(comp.stages) <= set(STAGES)
        assert all(0.0 <= d <= 1.0 for d in comp.depths)
        assert list(comp.depths) == sorted(comp.depths)
        assert comp.space and all(comp.layer_space(i) for i in range(comp.n_layers))
    names = {c.name: c for c in comps}
    for text_name, speech_name in adapter.modality_pairs():
        assert names[text_name].modality == "text" and names[speech_name].modality == "speech"
    assert set(adapter.poolings) <= set(POOLINGS) and "mean" in adapter.poolings


def test_padding_never_changes_a_pooled_vector(adapter):
    """The short item pooled alone equals it pooled beside a longer one, first or last in the
    batch (right and left padding), with every pooling the family offers."""
    for comp in adapter.components():
        short, long = _inputs(adapter, comp.name, "short"), _inputs(adapter, comp.name, "long")
        for pooling in adapter.poolings:
            alone = adapter.extract(comp.name, [short], [LANG], pooling=pooling,
                                    **_extra(adapter, comp.name, 1))
            assert alone.pooled.shape == (1, comp.n_layers, comp.dim)
            assert (alone.n_positions > 0).all()
            for order in (("short", "long"), ("long", "short")):
                at = order.index("short")
                batched = adapter.extract(comp.name, [{"short": short, "long": long}[w] for w in order],
                                          [LANG, LANG], pooling=pooling,
                                          **_extra(adapter, comp.name, 2, order))
                where = f"{adapter.name} {comp.name} {pooling} {order}"
                np.testing.assert_allclose(batched.pooled[at], alone.pooled[0], atol=ATOL,
                                           rtol=RTOL, err_msg=where)
                np.testing.assert_array_equal(batched.n_positions[at], alone.n_positions[0])
                # the longer input pools over more positions somewhere along the path, and its
                # vector is its own
                other = 1 - at
                assert (batched.n_positions[other] >= batched.n_positions[at]).all(), where
                assert (batched.n_positions[other] > batched.n_positions[at]).any(), where
                assert not np.allclose(batched.pooled[other], batched.pooled[at], atol=1e-3), where


def test_pooling_is_a_function_of_the_token_states(adapter):
    """Every pooling the family offers, recomputed from the token-level states, gives the pooled
    vector; the pooled positions are the masked ones."""
    for comp in adapter.components():
        item = _inputs(adapter, comp.name, "short")
        extra = _extra(adapter, comp.name, 1)
        target = {"target": extra["targets"][0]} if extra else {}
        tokens = adapter.token_states(comp.name, item, LANG, **target)
        assert tokens.n_layers == comp.n_layers
        assert all(layer.shape[1] == comp.dim for layer in tokens.layers)
        for pooling in adapter.poolings:
            pooled = adapter.extract(comp.name, [item], [LANG], pooling=pooling, **extra)
            np.testing.assert_allclose(pool_token_states(tokens, pooling), pooled.pooled[0],
                                       atol=ATOL, rtol=RTOL,
                                       err_msg=f"{adapter.name} {comp.name} {pooling}")
            np.testing.assert_array_equal([int(m.sum()) for m in tokens.pooled_mask],
                                          pooled.n_positions[0])
        for layer, labels, times, stage in zip(tokens.layers, tokens.labels, tokens.times_s,
                                               comp.stages, strict=True):
            assert len(labels) == len(layer)
            assert times is None or len(times) == len(layer)
            if comp.modality == "speech" and stage in ("encoder", "length_adaptor", "pooler"):
                # audio frames carry times (a decoder fed speech runs over tokens: none)
                assert times is not None and np.all(np.diff(times) > 0)


def test_last_token_pooling_where_offered_and_refused_elsewhere(adapter):
    for comp in adapter.components():
        item = _inputs(adapter, comp.name, "short")
        extra = _extra(adapter, comp.name, 1)
        if "last" in adapter.poolings and comp.modality == "text":
            tokens = adapter.token_states(comp.name, item, LANG)
            last = adapter.extract(comp.name, [item], [LANG], pooling="last").pooled[0]
            np.testing.assert_allclose(last, pool_token_states(tokens, "last"), atol=ATOL,
                                       rtol=RTOL)
            mean = adapter.extract(comp.name, [item], [LANG]).pooled[0]
            assert not np.allclose(last, mean)
        elif "last" not in adapter.poolings:
            with pytest.raises(ValueError, match="pooling"):
                adapter.extract(comp.name, [item], [LANG], pooling="last", **extra)


def test_an_unknown_language_is_named_not_silently_encoded(adapter):
    comp = adapter.components()[0]
    assert not adapter.supports_language("xxx_Zzzz")
    with pytest.raises(UnsupportedLanguageError, match="xxx_Zzzz"):
        adapter.extract(comp.name, [_inputs(adapter, comp.name, "short")], ["xxx_Zzzz"],
                        **_extra(adapter, comp.name, 1))


@pytest.mark.parametrize("name", TINY_MODELS)
def test_two_different_models_never_return_identical_states(name):
    """Seeds 0 and 1 differ at every layer past the input embedding of every component; seed 0
    loaded again repeats itself bit for bit."""
    first = load_model(name, device="cpu", seed=0)
    second = load_model(name, device="cpu", seed=1)
    again = load_model(name, device="cpu", seed=0)
    for comp in first.components():
        item = _inputs(first, comp.name, "short")
        a = first.extract(comp.name, [item], [LANG], **_extra(first, comp.name, 1)).pooled
        b = second.extract(comp.name, [item], [LANG], **_extra(second, comp.name, 1)).pooled
        for layer in range(1, comp.n_layers):
            assert not np.allclose(a[0, layer], b[0, layer], atol=1e-4), \
                f"{name} {comp.name} layer {layer}"
        np.testing.assert_array_equal(
            again.extract(comp.name, [item], [LANG], **_extra(first, comp.name, 1)).pooled, a)
