"""SALMONN's prompt pieces get the official slow tokenizer's ids (no download).

The official code tokenises ``"USER: <Speech>"`` and ``"</Speech> {prompt}\\nASSISTANT:"`` with
transformers 4.28's slow ``LlamaTokenizer`` (``use_fast=False``, ``add_special_tokens=False``).
transformers 5 has no slow Llama tokenizer, and for text holding no control token the slow one's
ids are SentencePiece's ``encode`` of the text, so the reference here is
``sentencepiece.SentencePieceProcessor`` itself, on a BPE model these tests train with Llama's
settings (byte fallback, identity normalisation, dummy prefix, spaces kept, digits split), saved
in a folder laid out like Vicuna's and read as ``load_salmonn`` reads it.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from core.models.salmonn import (
    DEFAULT_INSTRUCTION,
    SalmonnAdapter,
    prompt_piece_ids,
    template_pieces,
)
from core.models.salmonn.config import tiny_config
from core.models.salmonn.modules import SalmonnModel
from core.models.salmonn.prompt import piece_ids
from core.models.salmonn.tokenizer import build_feature_extractor, load_llm_tokenizer

spm = pytest.importorskip("sentencepiece")

pytestmark = pytest.mark.usefixtures("one_thread")

#: leading/trailing spaces (stripped, as cli_inference.py strips), newlines, tabs, double spaces,
#: non-ASCII text in and outside the trained vocabulary (byte fallback)
INSTRUCTIONS = [
    DEFAULT_INSTRUCTION,
    "   Recognize the speech and give me the transcription.  ",
    "请将语音中的内容写下来。",
    "Hören Sie sich die Rede an und schreiben Sie ihren Inhalt auf.",
    "Two lines:\nfirst the words,  then\tthe translation.",
    "\n Übersetze ins Japanische: 日本語 🙂 ",
    "Repeat 2024 numbers, 3.14 and 10,000 exactly.",
]

_WORDS = ("USER ASSISTANT Speech Repeat the content exactly Recognize speech and give me "
          "transcription Listen to translate it into German Chinese Japanese please describe "
          "audio what you hear each person says music clip story Hören Sie sich die Rede an "
          "schreiben ihren Inhalt auf Übersetze ins Deutsche größer Grüße café naïve 请 将 语音 "
          "中 的 内容 写 下来 2024 3.14 10,000 first then words lines").split()


def _corpus(n_lines: int = 400) -> str:
    rng = random.Random(0)
    lines = []
    for i in range(n_lines):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
        if i % 4 == 0:
            words = f"USER: <Speech>{words}</Speech> {words}.\nASSISTANT:"
        lines.append(words)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def vicuna_folder(tmp_path_factory) -> Path:
    """A folder laid out like lmsys/vicuna-13b-v1.1's tokenizer files, over a tiny BPE model
    trained with Llama's SentencePiece settings."""
    root = tmp_path_factory.mktemp("vicuna")
    (root / "corpus.txt").write_text(_corpus(), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"), model_prefix=str(root / "tokenizer"), model_type="bpe",
        vocab_size=420, byte_fallback=True, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=0.99, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, minloglevel=2)
    (root / "tokenizer.vocab").unlink()
    (root / "corpus.txt").unlink()

    def token(content: str) -> dict:
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    specials = {"bos_token": token("<s>"), "eos_token": token("</s>"), "unk_token": token("<unk>")}
    (root / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": 2048, "pad_token": None, "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", **specials}))
    (root / "special_tokens_map.json").write_text(json.dumps(specials))
    return root


@pytest.fixture(scope="module")
def reference(vicuna_folder):
    return spm.SentencePieceProcessor(model_file=str(vicuna_folder / "tokenizer.model"))


@pytest.fixture(scope="module")
def tokenizer(vicuna_folder):
    return load_llm_tokenizer(str(vicuna_folder))


def test_the_pieces_are_the_official_strings():
    assert template_pieces(f"  {DEFAULT_INSTRUCTION} \n") == (
        "USER: <Speech>", "</Speech> Repeat the content exactly.\nASSISTANT:")


@pytest.mark.parametrize("instruction", INSTRUCTIONS)
def test_the_prompt_pieces_get_the_slow_tokenizers_ids(tokenizer, reference, instruction):
    before, after = template_pieces(instruction)
    assert prompt_piece_ids(tokenizer, instruction) == (reference.encode(before),
                                                        reference.encode(after))


def test_the_trained_model_exercises_merges_and_byte_fallback(reference):
    """The comparison means something: the pieces are not spelled one character a token, and
    characters outside the vocabulary go through byte fallback."""
    before, after = template_pieces(DEFAULT_INSTRUCTION)
    pieces = reference.encode(before + after, out_type=str)
    assert len(pieces) < len(before + after) / 2 and "<0x0A>" in pieces
    assert "<0xF0>" in reference.encode("🙂", out_type=str)
    assert reference.get_piece_size() == 420


def test_a_leading_space_is_where_the_two_tokenizers_differ(tokenizer, reference):
    """SentencePiece adds its dummy prefix to ``" x"`` (two marks), transformers 5's Metaspace
    does not: so a piece starting with whitespace is refused, and the template never makes one."""
    text = " Repeat the content"
    assert tokenizer.encode(text, add_special_tokens=False) != reference.encode(text)
    with pytest.raises(ValueError, match="starts with whitespace"):
        piece_ids(tokenizer, text)
    assert piece_ids(tokenizer, text.strip()) == reference.encode(text.strip())


@pytest.mark.parametrize("instruction", ["Say </s> now.", "<s>Repeat.", "Pad with [PAD].",
                                         "Unknown <unk>.", "  "])
def test_an_instruction_naming_a_control_token_is_refused(tokenizer, instruction):
    with pytest.raises(ValueError, match="control token|empty"):
        prompt_piece_ids(tokenizer, instruction)


def test_control_tokens_would_be_split_out_by_this_tokenizer(tokenizer, reference):
    """Why they are refused: transformers 5 turns ``</s>`` into the EOS id, where SentencePiece's
    plain text encoding does not, and the text around it is handled by other rules."""
    ids = tokenizer.encode("Say </s> now", add_special_tokens=False)
    assert 2 in ids and 2 not in reference.encode("Say </s> now")


def test_a_saved_tokenizer_json_gives_the_same_ids(tokenizer, reference, tmp_path):
    """A Vicuna folder may also carry ``tokenizer.json``; read alone it gives the same ids."""
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "tokenizer.model").unlink(missing_ok=True)
    assert (tmp_path / "tokenizer.json").is_file()
    again = load_llm_tokenizer(str(tmp_path))
    for instruction in INSTRUCTIONS:
        before, after = template_pieces(instruction)
        assert prompt_piece_ids(again, instruction) == (reference.encode(before),
                                                        reference.encode(after))


def test_the_adapter_wraps_the_content_in_the_reference_ids(tokenizer, reference):
    """The whole row the LLM is given: BOS, the piece before, the content, the piece after."""
    config = tiny_config(len(tokenizer))
    adapter = SalmonnAdapter(SalmonnModel(config), tokenizer, build_feature_extractor(),
                             name="salmonn-spm", device="cpu")
    ids, _, content = adapter.text_ids(["Hören Sie die Rede."])
    before, after = template_pieces(DEFAULT_INSTRUCTION)
    expected = [1, *reference.encode(before), *reference.encode("Hören Sie die Rede."),
                *reference.encode(after)]
    assert ids[0].tolist() == expected
    assert ids[0][content[0]].tolist() == reference.encode("Hören Sie die Rede.")
    assert adapter.conditioning()["template"].startswith("<s>USER: <Speech>")


def _check_script():
    path = Path(__file__).resolve().parents[1] / "docs" / "models" / "salmonn_check.py"
    spec = importlib.util.spec_from_file_location("salmonn_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_check_script_passes_on_a_matching_tokenizer(vicuna_folder, capsys):
    script = _check_script()
    assert script.main(["check", "--llm", str(vicuna_folder)]) == 0
    out = capsys.readouterr().out
    assert "all pieces give the official ids" in out and "DIFFERS" not in out
    with pytest.raises(SystemExit) as stop:
        script.main(["--help"])
    assert stop.value.code == 0


def test_the_check_script_reports_official_ids_that_differ(vicuna_folder, reference, tmp_path,
                                                          capsys):
    before, after = template_pieces(DEFAULT_INSTRUCTION)
    wrong = {DEFAULT_INSTRUCTION: [reference.encode(before), reference.encode(after)[:-1]]}
    (tmp_path / "official.json").write_text(json.dumps(wrong))
    script = _check_script()
    assert script.main(["check", "--llm", str(vicuna_folder), "--instruction",
                        DEFAULT_INSTRUCTION, "--official", str(tmp_path / "official.json")]) == 1
    assert "DIFFERS after" in capsys.readouterr().out
