"""SALMONN's prompt: the official template, its two text pieces and their token ids.

The official code (bytedance/SALMONN, branch ``salmonn``: ``configs/decode_config.yaml``,
``cli_inference.py``, ``models/salmonn.py`` ``prompt_wrap``) fills ``"USER: {}\\nASSISTANT:"``
with ``"<Speech><SpeechHere></Speech> " + prompt.strip()``, splits it at ``<SpeechHere>`` and
tokenises the two pieces separately with the slow, SentencePiece-based ``LlamaTokenizer``
(transformers 4.28, ``use_fast=False``, ``add_special_tokens=False``; ``[PAD]`` added as the pad
token). For a piece holding no control-token string, that tokenizer's ids are SentencePiece's own
``encode(piece)``: the model's dummy prefix ``▁`` in front, spaces as ``▁``, byte fallback.

transformers 5 has no slow Llama tokenizer; its ``LlamaTokenizer`` (tokenizers' BPE with a
Metaspace pre-tokenizer) gives the same ids for such a piece unless the piece starts with
whitespace (Metaspace does not add its ``▁`` when there already is one; SentencePiece does), and
it splits control tokens (``<s>``, ``</s>``, ``<unk>``) out differently from the slow tokenizer's
legacy rules. Neither case can reach the pieces here: both start with a letter or ``<`` by
construction, and an instruction naming a control token is refused. Tested against SentencePiece
on a model trained the way Llama's was (tests/test_salmonn_prompt_tokens.py); for the released
Vicuna tokenizer, docs/models/salmonn_check.py does the same comparison in one command.
"""

from __future__ import annotations

from typing import Any

#: official configs/decode_config.yaml
PROMPT_TEMPLATE = "USER: {}\nASSISTANT:"
SPEECH_PLACEHOLDER = "<SpeechHere>"
#: official cli_inference.py: what is put in the template around the speech
SPEECH_WRAP = "<Speech>{}</Speech> {}"
#: neutral, the same for text and speech; after the content, so it cannot change pooled states
DEFAULT_INSTRUCTION = "Repeat the content exactly."
#: the official code adds this pad token to Vicuna's tokenizer (``add_special_tokens``)
OFFICIAL_PAD_TOKEN = "[PAD]"


def template_pieces(instruction: str) -> tuple[str, str]:
    """The official prompt for ``instruction`` split at ``<SpeechHere>`` (``prompt_wrap``):
    ``("USER: <Speech>", "</Speech> {instruction}\\nASSISTANT:")``, the instruction stripped as
    ``cli_inference.py`` strips it."""
    prompt = PROMPT_TEMPLATE.format(SPEECH_WRAP.format(SPEECH_PLACEHOLDER, instruction.strip()))
    before, after = prompt.split(SPEECH_PLACEHOLDER)
    return before, after


def control_tokens(tokenizer: Any) -> list[str]:
    """Strings the official slow tokenizer would split out as control tokens: the tokenizer's
    special and added tokens, and the ``[PAD]`` the official code adds."""
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    found.update(str(t) for t in tokenizer.get_added_vocab())
    found.add(OFFICIAL_PAD_TOKEN)
    return sorted(t for t in found if t)


def check_instruction(instruction: str, tokenizer: Any) -> None:
    """Refuse an instruction holding a control-token string: the slow tokenizer and transformers
    5's split it out with different whitespace rules, so the ids would not be the official ones."""
    named = [t for t in control_tokens(tokenizer) if t in instruction]
    if named:
        raise ValueError(f"the instruction {instruction!r} contains the control token(s) "
                         f"{', '.join(named)}; the official slow tokenizer splits those out with "
                         "rules this tokenizer does not share, so such an instruction is refused")
    if not instruction.strip():
        raise ValueError("the instruction is empty")


def piece_ids(tokenizer: Any, piece: str) -> list[int]:
    """Ids of one prompt piece, no BOS/EOS. A piece starting with whitespace is refused (there
    SentencePiece writes two ``▁`` and transformers 5's Metaspace one)."""
    if piece[:1].isspace():
        raise ValueError(f"prompt piece {piece!r} starts with whitespace; its ids would differ "
                         "from the official slow tokenizer's")
    return list(tokenizer.encode(piece, add_special_tokens=False))


def prompt_piece_ids(tokenizer: Any, instruction: str) -> tuple[list[int], list[int]]:
    """(ids before the speech, ids after it) for ``instruction``, as the official ``prompt_wrap``
    tokenises them (BOS is put in front separately, as ``generate`` does)."""
    check_instruction(instruction, tokenizer)
    before, after = template_pieces(instruction)
    return piece_ids(tokenizer, before), piece_ids(tokenizer, after)
