"""The CTranslate2 Whisper reader and mapping (core.models.ct2_whisper) on a synthetic file written
from the tiny random model's weights, and the conversion cache.

Expected values come from an independent path: a hand-written writer of the documented format and
the tiny model's own state dict, never from the reader's output itself.
"""
# ruff: noqa: F811 - tiny is whisper_fixtures' fixture, imported to be requested here

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core.models import ct2_whisper
from core.models.whisper_load import TINY_RANDOM_CONFIG
from whisper_fixtures import tiny  # noqa: F401 - a fixture


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_variable(name: str, array: np.ndarray, code: int) -> bytes:
    out = _ct2_string(name) + struct.pack("<B", array.ndim)
    out += b"".join(struct.pack("<I", d) for d in array.shape)
    data = array.tobytes()
    return out + struct.pack("<BI", code, len(data)) + data


def _ct2_from_hf(state: dict[str, torch.Tensor], config) -> list[tuple[str, np.ndarray]]:
    """CT2 layout per /shared/notes: fused q,k,v (self) / k,v (cross), zero k bias, tied projection."""
    f16 = {k: v.detach().to(torch.float16).numpy() for k, v in state.items()}
    zeros = np.zeros(config.d_model, dtype=np.float16)
    out = [
        ("encoder/conv1/weight", f16["model.encoder.conv1.weight"]),
        ("encoder/conv1/bias", f16["model.encoder.conv1.bias"]),
        ("encoder/conv2/weight", f16["model.encoder.conv2.weight"]),
        ("encoder/conv2/bias", f16["model.encoder.conv2.bias"]),
        ("encoder/position_encodings/encodings", f16["model.encoder.embed_positions.weight"]),
        ("encoder/layer_norm/gamma", f16["model.encoder.layer_norm.weight"]),
        ("encoder/layer_norm/beta", f16["model.encoder.layer_norm.bias"]),
        ("decoder/embeddings/weight", f16["model.decoder.embed_tokens.weight"]),
        ("decoder/position_encodings/encodings", f16["model.decoder.embed_positions.weight"]),
        ("decoder/layer_norm/gamma", f16["model.decoder.layer_norm.weight"]),
        ("decoder/layer_norm/beta", f16["model.decoder.layer_norm.bias"]),
    ]
    for side, n in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(n):
            h, c = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            sa = f"{h}.self_attn"
            out += [
                (f"{c}/self_attention/linear_0/weight", np.concatenate(
                    [f16[f"{sa}.q_proj.weight"], f16[f"{sa}.k_proj.weight"], f16[f"{sa}.v_proj.weight"]])),
                (f"{c}/self_attention/linear_0/bias", np.concatenate(
                    [f16[f"{sa}.q_proj.bias"], zeros, f16[f"{sa}.v_proj.bias"]])),
                (f"{c}/self_attention/linear_1/weight", f16[f"{sa}.out_proj.weight"]),
                (f"{c}/self_attention/linear_1/bias", f16[f"{sa}.out_proj.bias"]),
                (f"{c}/self_attention/layer_norm/gamma", f16[f"{h}.self_attn_layer_norm.weight"]),
                (f"{c}/self_attention/layer_norm/beta", f16[f"{h}.self_attn_layer_norm.bias"]),
                (f"{c}/ffn/linear_0/weight", f16[f"{h}.fc1.weight"]),
                (f"{c}/ffn/linear_0/bias", f16[f"{h}.fc1.bias"]),
                (f"{c}/ffn/linear_1/weight", f16[f"{h}.fc2.weight"]),
                (f"{c}/ffn/linear_1/bias", f16[f"{h}.fc2.bias"]),
                (f"{c}/ffn/layer_norm/gamma", f16[f"{h}.final_layer_norm.weight"]),
                (f"{c}/ffn/layer_norm/beta", f16[f"{h}.final_layer_norm.bias"]),
            ]
            if side == "decoder":
                ca = f"{h}.encoder_attn"
                out += [
                    (f"{c}/attention/linear_0/weight", f16[f"{ca}.q_proj.weight"]),
                    (f"{c}/attention/linear_0/bias", f16[f"{ca}.q_proj.bias"]),
                    (f"{c}/attention/linear_1/weight",
                     np.concatenate([f16[f"{ca}.k_proj.weight"], f16[f"{ca}.v_proj.weight"]])),
                    (f"{c}/attention/linear_1/bias", np.concatenate([zeros, f16[f"{ca}.v_proj.bias"]])),
                    (f"{c}/attention/linear_2/weight", f16[f"{ca}.out_proj.weight"]),
                    (f"{c}/attention/linear_2/bias", f16[f"{ca}.out_proj.bias"]),
                    (f"{c}/attention/layer_norm/gamma", f16[f"{h}.encoder_attn_layer_norm.weight"]),
                    (f"{c}/attention/layer_norm/beta", f16[f"{h}.encoder_attn_layer_norm.bias"]),
                ]
    return out


def _write_ct2(path_stem: Path, tensors, heads: int, *, split_at: int = 1000) -> tuple[Path, Path]:
    """Write model.bin in two parts split at an arbitrary byte (inside a header on purpose)."""
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<I", 3)
    scalars = [
        ("encoder/num_heads", np.array(heads, dtype=np.int16), 2),
        ("decoder/num_heads", np.array(heads, dtype=np.int16), 2),
        ("decoder/activation", np.array(3, dtype=np.int8), 1),
        ("decoder/pre_norm", np.array(1, dtype=np.int8), 1),
    ]
    blob += struct.pack("<I", len(tensors) + len(scalars))
    for name, array in sorted(tensors, key=lambda t: t[0]):
        blob += _ct2_variable(name, array, 4)
    for name, array, code in scalars:
        blob += _ct2_variable(name, array, code)
    blob += struct.pack("<I", 1) + _ct2_string("decoder/projection/weight")
    blob += _ct2_string("decoder/embeddings/weight")
    part1, part2 = path_stem.with_suffix(".part1"), path_stem.with_suffix(".part2")
    part1.write_bytes(blob[:split_at])
    part2.write_bytes(blob[split_at:])
    return part1, part2


@pytest.fixture(scope="module")
def synthetic_ct2(tiny, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ct2")
    tensors = _ct2_from_hf(tiny.model.state_dict(), tiny.model.config)
    parts = _write_ct2(directory / "model.bin", tensors, TINY_RANDOM_CONFIG["encoder_attention_heads"])
    real = ct2_whisper.find_packaged_whisper_base()  # only its tokenizer.json / config.json
    packaged = ct2_whisper.PackagedWhisper(parts=parts, tokenizer_json=real.tokenizer_json,
                                           ct2_config_json=real.ct2_config_json,
                                           versions={"synthetic": "0"})
    return packaged, tensors


def test_ct2_round_trip_recovers_hf_state_dict(tiny, synthetic_ct2):
    packaged, tensors = synthetic_ct2
    ct2 = ct2_whisper.read_ct2_model(packaged.parts, progress=False)
    assert ct2.spec == "WhisperSpec" and ct2.scalars["encoder/num_heads"] == 4
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert len(ct2.tensors) == len(tensors)
    state = ct2_whisper.ct2_to_hf_state_dict(ct2)
    original = tiny.model.state_dict()
    assert set(original) - set(state) == {"proj_out.weight"}
    for key, value in state.items():
        expected = original[key].to(torch.float16)
        assert torch.equal(value, expected), key
    config = ct2_whisper.whisper_config_from_ct2(
        ct2, ct2_whisper.load_ct2_config(packaged.ct2_config_json), tiny.tokenizer)
    for field in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                  "encoder_ffn_dim", "vocab_size", "num_mel_bins", "max_source_positions",
                  "max_target_positions", "decoder_start_token_id", "eos_token_id"):
        assert getattr(config, field) == getattr(tiny.model.config, field), field
    ct2_whisper.check_state_dict(state, config)


def test_ct2_hashes_cover_both_parts(synthetic_ct2):
    import hashlib

    packaged, _ = synthetic_ct2
    ct2 = ct2_whisper.read_ct2_model(packaged.parts, progress=False)
    assert ct2.part_sha256 == tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in packaged.parts)


def test_check_state_dict_reports_missing_and_wrong_shapes(tiny, synthetic_ct2):
    packaged, _ = synthetic_ct2
    state = ct2_whisper.ct2_to_hf_state_dict(ct2_whisper.read_ct2_model(packaged.parts, progress=False))
    broken = dict(state)
    del broken["model.encoder.conv1.bias"]
    broken["model.decoder.layer_norm.weight"] = torch.zeros(3)
    with pytest.raises(ct2_whisper.CT2FormatError, match="conv1.bias.*layer_norm.weight"):
        ct2_whisper.check_state_dict(broken, tiny.model.config)


def test_ct2_reader_rejects_truncated_file(synthetic_ct2, tmp_path):
    packaged, _ = synthetic_ct2
    cut = tmp_path / "cut.part2"
    cut.write_bytes(packaged.parts[1].read_bytes()[:-100])
    with pytest.raises(ct2_whisper.CT2FormatError, match="unexpected end"):
        ct2_whisper.read_ct2_model([packaged.parts[0], cut], progress=False)


def test_ct2_mapping_refuses_nonzero_k_bias(synthetic_ct2):
    packaged, _ = synthetic_ct2
    ct2 = ct2_whisper.read_ct2_model(packaged.parts, progress=False)
    name = "encoder/layer_0/self_attention/linear_0/bias"
    bias = ct2.tensors[name].clone()
    bias[70] = 1.0  # inside the k third (64..127)
    ct2.tensors[name] = bias
    with pytest.raises(ct2_whisper.CT2FormatError, match="k part"):
        ct2_whisper.ct2_to_hf_state_dict(ct2)


def test_ct2_mapping_refuses_unmapped_tensors(synthetic_ct2):
    packaged, _ = synthetic_ct2
    ct2 = ct2_whisper.read_ct2_model(packaged.parts, progress=False)
    ct2.tensors["encoder/extra/weight"] = torch.zeros(2)
    with pytest.raises(ct2_whisper.CT2FormatError, match="not mapped"):
        ct2_whisper.ct2_to_hf_state_dict(ct2)


def test_conversion_cache_is_atomic_and_reused(tiny, synthetic_ct2, tmp_path, monkeypatch):
    packaged, _ = synthetic_ct2
    target = tmp_path / "cache" / "whisper-base-ct2"
    directory = ct2_whisper.ensure_whisper_base_converted(target, progress=False, packaged=packaged)
    assert directory == target
    prov = json.loads((target / "provenance.json").read_text())
    assert prov["source_packages"] == {"synthetic": "0"}
    assert [p["bytes"] for p in prov["parts"]] == [p.stat().st_size for p in packaged.parts]
    assert sorted(p.name for p in target.parent.iterdir()) == ["whisper-base-ct2"]  # no temp left

    # the cache is a plain HF directory: loading it gives the original model's outputs
    from transformers import WhisperForConditionalGeneration

    loaded = WhisperForConditionalGeneration.from_pretrained(target, dtype=torch.float32)
    assert loaded.proj_out.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, tiny.model.state_dict()[key].half().float(), msg=key)

    # second call: no re-reading of the CT2 file
    def fail(*_a, **_k):
        raise AssertionError("cache was not reused")

    monkeypatch.setattr(ct2_whisper, "read_ct2_model", fail)
    assert ct2_whisper.ensure_whisper_base_converted(target, packaged=packaged) == target

    # a part with the same size but other bytes (a re-release) is converted again: the cache
    # check compares the recorded sha256, not sizes
    monkeypatch.undo()
    part = max(packaged.parts, key=lambda p: p.stat().st_size)
    original_bytes = part.read_bytes()
    flipped = bytearray(original_bytes)
    flipped[len(flipped) // 2] ^= 0x01
    calls = []
    original = ct2_whisper.read_ct2_model
    monkeypatch.setattr(ct2_whisper, "read_ct2_model",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    try:
        part.write_bytes(bytes(flipped))
        assert part.stat().st_size == len(original_bytes)
        ct2_whisper.ensure_whisper_base_converted(target, progress=False, packaged=packaged)
    except (ct2_whisper.CT2FormatError, UnicodeDecodeError, ValueError):
        pass  # the flipped byte may break the file itself; either way it was read again
    finally:
        part.write_bytes(original_bytes)
    assert calls == [1]
    monkeypatch.undo()
    ct2_whisper.ensure_whisper_base_converted(target, progress=False, packaged=packaged)

    # a cache from other package versions is rebuilt (and the crash-safe path leaves no debris)
    stale = ct2_whisper.PackagedWhisper(packaged.parts, packaged.tokenizer_json,
                                        packaged.ct2_config_json, {"synthetic": "1"})
    ct2_whisper.ensure_whisper_base_converted(target, progress=False, packaged=stale)
    assert json.loads((target / "provenance.json").read_text())["source_packages"] == {"synthetic": "1"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["whisper-base-ct2"]


def test_failed_conversion_leaves_no_cache(synthetic_ct2, tmp_path, monkeypatch):
    packaged, _ = synthetic_ct2

    def crash(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ct2_whisper, "check_state_dict", crash)
    target = tmp_path / "whisper-base-ct2"
    with pytest.raises(RuntimeError, match="disk full"):
        ct2_whisper.ensure_whisper_base_converted(target, progress=False, packaged=packaged)
    assert list(tmp_path.iterdir()) == []


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSMODAL_LENS_CACHE", str(tmp_path))
    assert ct2_whisper.whisper_base_cache_dir() == tmp_path / "whisper-base-ct2"
    monkeypatch.delenv("CROSSMODAL_LENS_CACHE")
    assert ct2_whisper.whisper_base_cache_dir() == Path.home() / ".cache/crossmodal-lens/whisper-base-ct2"
