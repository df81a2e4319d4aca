"""What the SONAR tests share: the tiny random SONAR adapter (loaded once per test module; test
files import the ``tiny`` fixture by name, pytest finds it there) and the official checkpoint
layouts written from it."""

from __future__ import annotations

import pytest
import torch

from core.models import sonar as S


@pytest.fixture(scope="module")
def tiny() -> S.SonarAdapter:
    """The tiny random SONAR (text encoder; eng, deu and swh speech encoders) on the CPU."""
    return S.load_sonar(name="sonar-tiny-random", random=True, device="cpu")


def official_speech(adapter, iso):
    """One language's speech encoder of ``adapter`` and its tensors under the official fairseq2
    names."""
    module = adapter.speech_encoder(iso)
    return S.official_state_dict(module, S.speech_name_map(module.cfg)), module


def fairseq1_speech_names(state: dict) -> dict:
    """fairseq2 -> fairseq(1) layout, transcribed from sonar_speech/handler.py's key map."""
    import re

    table = [
        (r"^encoder_frontend\.post_extract_layer_norm\.", "encoder.w2v_model.layer_norm."),
        (r"^encoder_frontend\.model_dim_proj\.", "encoder.w2v_model.post_extract_proj."),
        (r"^encoder\.layers\.(\d+)\.conv_layer_norm\.", r"encoder.w2v_model.encoder.layers.\1.conv_module.layer_norm."),
        (r"^encoder\.layers\.(\d+)\.conv\.", r"encoder.w2v_model.encoder.layers.\1.conv_module."),
        (r"^encoder\.layers\.(\d+)\.ffn(1|2)_layer_norm\.", r"encoder.w2v_model.encoder.layers.\1.ffn\2.layer_norm."),
        (r"^encoder\.layers\.(\d+)\.ffn(1|2)\.inner_proj\.", r"encoder.w2v_model.encoder.layers.\1.ffn\2.w_1."),
        (r"^encoder\.layers\.(\d+)\.ffn(1|2)\.output_proj\.", r"encoder.w2v_model.encoder.layers.\1.ffn\2.w_2."),
        (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.w2v_model.encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.", r"encoder.w2v_model.encoder.layers.\1.self_attn.linear_\2."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.output_proj\.", r"encoder.w2v_model.encoder.layers.\1.self_attn.linear_out."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.r_proj\.", r"encoder.w2v_model.encoder.layers.\1.self_attn.linear_pos."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.(u|v)_bias$", r"encoder.w2v_model.encoder.layers.\1.self_attn.pos_bias_\2"),
        (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.w2v_model.encoder.layers.\1.final_layer_norm."),
        (r"^layer_norm\.", "encoder.w2v_model.encoder.layer_norm."),
        (r"^encoder_pooler\.decoder_frontend\.embed\.", "decoder.embed_tokens."),
        (r"^encoder_pooler\.projection_out\.weight$", "decoder.embed_out"),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.self_attn\.output_proj\.", r"decoder.layers.\1.self_attn.out_proj."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.encoder_decoder_attn\.output_proj\.", r"decoder.layers.\1.encoder_attn.out_proj."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.encoder_decoder_attn_layer_norm\.", r"decoder.layers.\1.encoder_attn_layer_norm."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.encoder_decoder_attn\.", r"decoder.layers.\1.encoder_attn."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.ffn\.inner_proj\.", r"decoder.layers.\1.fc1."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.ffn\.output_proj\.", r"decoder.layers.\1.fc2."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.ffn_layer_norm\.", r"decoder.layers.\1.final_layer_norm."),
        (r"^encoder_pooler\.decoder\.layers\.(\d+)\.", r"decoder.layers.\1."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, repl in table:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise AssertionError(f"no fairseq name for {key}")
    out["encoder.w2v_model.mask_emb"] = torch.zeros(4)  # dropped by the official converter too
    return out
