"""Compare SALMONN's prompt token ids here with the official slow tokenizer's, for a Vicuna folder.

One command, in this project's environment, offline (see docs/models/salmonn.md, "Checked
against the official code")::

    .venv/bin/python docs/models/salmonn_check.py check --llm /path/to/vicuna-13b-v1.1 \\
        [--instruction "..."]...

For each instruction (by default ours and a few of the official test prompts) it builds the two
pieces the official ``prompt_wrap`` tokenises (``"USER: <Speech>"`` and ``"</Speech>
{instruction}\\nASSISTANT:"``) and prints the ids this project uses (transformers 5's tokenizer
read from the folder as ``load_salmonn`` reads it, ``core.models.salmonn.prompt``) next to the
reference: SentencePiece's ``encode`` of each piece on the folder's ``tokenizer.model``, which is
what transformers 4.28's slow ``LlamaTokenizer`` (``use_fast=False``, legacy) returns for text
holding no control token. Exits with status 1 if any id differs.

The official tokenizer itself can be asked too, in an environment with transformers 4.x and
sentencepiece (this file imports nothing of the project in that step)::

    python salmonn_check.py official --llm /path/to/vicuna-13b-v1.1 --out official_ids.json

then ``check ... --official official_ids.json`` compares with those ids as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: ours first, then prompts from the official prompts/test_prompt.json (English, Chinese, German)
INSTRUCTIONS = (
    "Repeat the content exactly.",
    "Recognize the speech and give me the transcription.",
    "请将语音中的内容写下来。",
    "Hören Sie sich die Rede an und schreiben Sie ihren Inhalt auf.",
    "Listen to the speech and translate it into Japanese.",
)


def official_pieces(instruction: str) -> tuple[str, str]:
    """The pieces as the official code makes them (decode_config.yaml, cli_inference.py,
    prompt_wrap), written here independently of the project's ``template_pieces``."""
    prompt = "USER: {}\nASSISTANT:".format("<Speech><SpeechHere></Speech> " + instruction.strip())
    before, after = prompt.split("<SpeechHere>")
    return before, after


def _official(args) -> int:
    from transformers import LlamaTokenizer

    tokenizer = LlamaTokenizer.from_pretrained(args.llm, use_fast=False, legacy=True)
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})  # as the official code does
    rows = {}
    for instruction in args.instruction or INSTRUCTIONS:
        rows[instruction] = [tokenizer(piece, add_special_tokens=False).input_ids
                             for piece in official_pieces(instruction)]
    Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _check(args) -> int:
    import sentencepiece as spm

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from core.models.salmonn.prompt import DEFAULT_INSTRUCTION, prompt_piece_ids
    from core.models.salmonn.tokenizer import load_llm_tokenizer

    model_file = Path(args.llm) / "tokenizer.model"
    if not model_file.is_file():
        print(f"{model_file} not found: the reference needs Vicuna's SentencePiece model")
        return 2
    reference = spm.SentencePieceProcessor(model_file=str(model_file))
    ours = load_llm_tokenizer(args.llm)
    official = (json.loads(Path(args.official).read_text(encoding="utf-8"))
                if args.official else {})
    instructions = list(args.instruction or dict.fromkeys([DEFAULT_INSTRUCTION, *INSTRUCTIONS]))
    differ = 0
    for instruction in instructions:
        got = prompt_piece_ids(ours, instruction)
        for name, piece, ids in zip(("before", "after"), official_pieces(instruction), got,
                                    strict=True):
            expected = {"sentencepiece": reference.encode(piece)}
            if instruction in official:
                expected["official"] = official[instruction][0 if name == "before" else 1]
            bad = [k for k, v in expected.items() if list(v) != list(ids)]
            differ += bool(bad)
            print(f"{'DIFFERS' if bad else 'same   '} {name:6} {piece!r}\n    ours: {ids}")
            for key in bad:
                print(f"    {key}: {expected[key]}")
    missing = [i for i in instructions if official and i not in official]
    if missing:
        print(f"not in {args.official} (compared with SentencePiece only): {missing}")
    print(f"{differ} piece(s) differ" if differ else "all pieces give the official ids")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="step", required=True)
    check = sub.add_parser("check", help="compare our ids with SentencePiece (this environment)")
    official = sub.add_parser("official", help="write the slow tokenizer's ids (transformers 4.x)")
    for step in (check, official):
        step.add_argument("--llm", required=True, help="Vicuna folder holding tokenizer.model")
        step.add_argument("--instruction", action="append",
                          help="an instruction to check (repeatable; default: a built-in list)")
    check.add_argument("--official", help="ids written by the 'official' step")
    official.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    return _check(args) if args.step == "check" else _official(args)


if __name__ == "__main__":
    sys.exit(main())
