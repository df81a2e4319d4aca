"""The store's schema, as ordered, named migrations: the only place tables are defined.

Each migration is applied once, in id order, and recorded in ``_migrations`` with the time it ran, so
a file tells which schema it holds. Never edit a released migration: append a new one (its id is the
next integer) and the code's ``SCHEMA_VERSION`` follows.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    id: int
    name: str
    sql: str


MIGRATIONS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS _migrations (
    id         INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
"""

_CORE_TABLES = """
CREATE TABLE runs (
    run_id     VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    model      VARCHAR NOT NULL,
    config     JSON NOT NULL,
    versions   JSON NOT NULL,
    status     VARCHAR NOT NULL          -- 'running' until finish_run, then 'complete'
);

CREATE TABLE languages (
    lang           VARCHAR PRIMARY KEY,  -- FLORES-200 code
    name           VARCHAR NOT NULL,
    resource_level VARCHAR,
    whisper_hours  DOUBLE,
    level_source   VARCHAR,
    espeak_voice   VARCHAR
);

CREATE TABLE items (
    item_id     INTEGER PRIMARY KEY,
    sentence_id INTEGER NOT NULL,
    lang        VARCHAR NOT NULL,
    modality    VARCHAR NOT NULL CHECK (modality IN ('text', 'speech')),
    text        VARCHAR NOT NULL,        -- the sentence (for speech: what is said)
    duration_s  DOUBLE,                  -- speech only
    n_tokens    INTEGER,                 -- text only, when the tokenizer is known
    cer         DOUBLE,                  -- speech only, when a model transcribed it
    transcript  VARCHAR,
    voice       VARCHAR,                 -- who speaks: 'espeak-ng <version> <voice>' or 'recording'
    UNIQUE (lang, modality, sentence_id)
);

CREATE TABLE components (
    run_id      VARCHAR NOT NULL,
    component   VARCHAR NOT NULL,
    modality    VARCHAR NOT NULL CHECK (modality IN ('text', 'speech')),
    n_layers    INTEGER NOT NULL,
    dim         INTEGER NOT NULL,
    description VARCHAR,
    layer_names JSON,
    PRIMARY KEY (run_id, component)
);

CREATE TABLE activations (
    run_id    VARCHAR NOT NULL,
    component VARCHAR NOT NULL,
    layer     INTEGER NOT NULL,
    item_id   INTEGER NOT NULL,
    dtype     VARCHAR NOT NULL CHECK (dtype IN ('float16', 'float32')),
    dim       INTEGER NOT NULL,
    vector    BLOB NOT NULL,             -- little-endian dtype[dim]
    PRIMARY KEY (run_id, component, layer, item_id)
);

CREATE TABLE metrics (
    run_id             VARCHAR NOT NULL,
    pairing            VARCHAR NOT NULL CHECK (pairing IN ('text-text', 'speech-speech', 'text-speech')),
    component_a        VARCHAR NOT NULL,
    component_b        VARCHAR NOT NULL,
    layer_a            INTEGER NOT NULL,
    layer_b            INTEGER NOT NULL,
    depth              DOUBLE NOT NULL,  -- relative depth in [0, 1] the two layers were aligned at
    lang_a             VARCHAR NOT NULL,
    lang_b             VARCHAR NOT NULL,
    modality_a         VARCHAR NOT NULL,
    modality_b         VARCHAR NOT NULL,
    metric             VARCHAR NOT NULL,
    params             JSON,
    n_samples          INTEGER NOT NULL,
    value              DOUBLE,
    baseline_mean      DOUBLE,
    baseline_std       DOUBLE,
    ci_low             DOUBLE,
    ci_high            DOUBLE,
    length_baseline    DOUBLE,
    value_residualised DOUBLE
);

CREATE TABLE projections (
    run_id    VARCHAR NOT NULL,
    component VARCHAR NOT NULL,
    layer     INTEGER NOT NULL,
    item_id   INTEGER NOT NULL,
    method    VARCHAR NOT NULL,
    x         DOUBLE NOT NULL,
    y         DOUBLE NOT NULL,
    params    JSON,
    PRIMARY KEY (run_id, component, layer, item_id, method)
);
"""

_DASHBOARD_INDEXES = """
CREATE INDEX metrics_by_run_metric_pairing_layer ON metrics (run_id, metric, pairing, layer_a);
CREATE INDEX items_by_lang_modality ON items (lang, modality, sentence_id);
"""

# Adapter interface v2: representation spaces, stages and depths per layer point, conditioning,
# pooling, per-run item measurements and pooled position counts. Stores written before it hold
# Whisper runs only (the one family then), so their rows are given Whisper's truth: each component
# its own space (encoder and decoder streams are unrelated), layer 0 the front end, then encoder
# (speech) or decoder (text) blocks; paired cosine and retrieval between the two components, which
# compared unrelated spaces, are deleted. Transcripts/CER and token counts move from the shared
# items to the run whose model measured them (the run config's asr_model / n_tokens_model).
_INTERFACE_V2 = """
ALTER TABLE components ADD COLUMN space VARCHAR;
ALTER TABLE components ADD COLUMN conditioning JSON;
UPDATE components SET space = run_id || '/' || component, conditioning = '{}';

CREATE TABLE layers (
    run_id    VARCHAR NOT NULL,
    component VARCHAR NOT NULL,
    layer     INTEGER NOT NULL,
    name      VARCHAR NOT NULL,
    stage     VARCHAR NOT NULL CHECK (stage IN ('frontend', 'encoder', 'length_adaptor', 'projector',
                                                'decoder', 'llm', 'pooler')),
    depth     DOUBLE NOT NULL,        -- relative depth in [0, 1] along the model's whole path
    space     VARCHAR NOT NULL,       -- representation space this point writes into
    PRIMARY KEY (run_id, component, layer)
);
INSERT INTO layers
SELECT c.run_id, c.component, l.layer,
       coalesce(json_extract_string(c.layer_names, '$[' || l.layer || ']'), 'layer ' || l.layer),
       CASE WHEN l.layer = 0 THEN 'frontend' WHEN c.modality = 'speech' THEN 'encoder'
            ELSE 'decoder' END,
       CASE WHEN c.n_layers > 1 THEN l.layer / (c.n_layers - 1) ELSE 0 END,
       c.space
FROM components c, (SELECT unnest(range(0, 1000)) AS layer) l
WHERE l.layer < c.n_layers;

CREATE TABLE run_items (
    run_id     VARCHAR NOT NULL,
    item_id    INTEGER NOT NULL,
    n_tokens   INTEGER,               -- text: tokens this run's model pooled over
    transcript VARCHAR,               -- speech: this run's model's transcript
    cer        DOUBLE,                -- speech: its character error rate
    PRIMARY KEY (run_id, item_id)
);
INSERT INTO run_items
SELECT r.run_id, i.item_id,
       CASE WHEN json_extract_string(r.config, '$.n_tokens_model') = r.model THEN i.n_tokens END,
       CASE WHEN json_extract_string(r.config, '$.asr_model') = r.model THEN i.transcript END,
       CASE WHEN json_extract_string(r.config, '$.asr_model') = r.model THEN i.cer END
FROM runs r, items i
WHERE (json_extract_string(r.config, '$.n_tokens_model') = r.model AND i.n_tokens IS NOT NULL)
   OR (json_extract_string(r.config, '$.asr_model') = r.model
       AND (i.transcript IS NOT NULL OR i.cer IS NOT NULL));
DROP INDEX items_by_lang_modality;
ALTER TABLE items DROP COLUMN n_tokens;
ALTER TABLE items DROP COLUMN transcript;
ALTER TABLE items DROP COLUMN cer;
CREATE INDEX items_by_lang_modality ON items (lang, modality, sentence_id);

ALTER TABLE activations ADD COLUMN n_positions INTEGER;  -- positions pooled (NULL: not recorded)

ALTER TABLE metrics ADD COLUMN pooling VARCHAR DEFAULT 'mean';
ALTER TABLE metrics ADD COLUMN shared_space BOOLEAN;
UPDATE metrics SET pooling = 'mean', shared_space = (component_a = component_b);
DELETE FROM metrics WHERE NOT shared_space AND metric IN ('paired_cosine', 'retrieval');
"""

# Findings a reviewer accepts (issue 9). Items get a voice rank: the same sentence, language and
# modality may be spoken by a second voice (a voice-change reference), so the unique key grows by it;
# stores before it hold one voice per language (rank 0). Activations may be int8 with a per-vector
# scale (the blob starts with the float32 scale; ``core.store.vectors``). Metric rows may carry their
# bootstrap values (``resamples``: one value per resample, the same sentence resamples for every row
# of a run with the same n_samples, so aggregates over rows are bootstrapped jointly), and the
# interval type they state (``ci_method``). Each run records the resource level it reads per
# language and its source (``run_languages``: Whisper's training hours, or a family's own). SVCCA's
# sensitivity to k and length-matched values live in ``metric_variants``.
_REVIEWED_FINDINGS = """
DROP INDEX items_by_lang_modality;
CREATE TABLE items_v4 (
    item_id     INTEGER PRIMARY KEY,
    sentence_id INTEGER NOT NULL,
    lang        VARCHAR NOT NULL,
    modality    VARCHAR NOT NULL CHECK (modality IN ('text', 'speech')),
    text        VARCHAR NOT NULL,
    duration_s  DOUBLE,
    voice       VARCHAR,
    voice_rank  INTEGER NOT NULL DEFAULT 0,  -- 0: the language's voice; 1: its second voice
    UNIQUE (lang, modality, sentence_id, voice_rank)
);
INSERT INTO items_v4 (item_id, sentence_id, lang, modality, text, duration_s, voice, voice_rank)
SELECT item_id, sentence_id, lang, modality, text, duration_s, voice, 0 FROM items;
DROP TABLE items;
ALTER TABLE items_v4 RENAME TO items;
CREATE INDEX items_by_lang_modality ON items (lang, modality, voice_rank, sentence_id);
CREATE TABLE activations_v4 (
    run_id      VARCHAR NOT NULL,
    component   VARCHAR NOT NULL,
    layer       INTEGER NOT NULL,
    item_id     INTEGER NOT NULL,
    dtype       VARCHAR NOT NULL CHECK (dtype IN ('float16', 'float32', 'int8')),
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL,      -- little-endian dtype[dim]; int8: float32 scale, then int8[dim]
    n_positions INTEGER,
    PRIMARY KEY (run_id, component, layer, item_id)
);
INSERT INTO activations_v4 (run_id, component, layer, item_id, dtype, dim, vector, n_positions)
SELECT run_id, component, layer, item_id, dtype, dim, vector, n_positions FROM activations;
DROP TABLE activations;
ALTER TABLE activations_v4 RENAME TO activations;
ALTER TABLE metrics ADD COLUMN resamples BLOB;        -- bootstrap values (core.store.vectors)
ALTER TABLE metrics ADD COLUMN ci_method VARCHAR;     -- 'percentile' (older rows) or 'bootstrap_se'
UPDATE metrics SET ci_method = 'percentile';
CREATE TABLE run_languages (
    run_id         VARCHAR NOT NULL,
    lang           VARCHAR NOT NULL,
    resource_level VARCHAR NOT NULL,
    level_source   VARCHAR NOT NULL,  -- where the level comes from, for this run's model
    PRIMARY KEY (run_id, lang)
);
CREATE TABLE metric_variants (
    run_id        VARCHAR NOT NULL,
    variant       VARCHAR NOT NULL,   -- 'svcca_k' (SVCCA at one k) or 'length_matched'
    pairing       VARCHAR NOT NULL,
    component_a   VARCHAR NOT NULL,
    component_b   VARCHAR NOT NULL,
    layer_a       INTEGER NOT NULL,
    layer_b       INTEGER NOT NULL,
    depth         DOUBLE NOT NULL,
    lang_a        VARCHAR NOT NULL,
    lang_b        VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    params        JSON,
    n_samples     INTEGER NOT NULL,
    value         DOUBLE,
    baseline_mean DOUBLE,
    baseline_std  DOUBLE
);
"""

# Hear the items again (issue 22). A store keeps no audio, so it records where each speech item's
# audio came from: the recording file the build read (its path and the file's checksum), or, for
# synthesised speech, nothing but the checksum of the 16 kHz float32 waveform the model heard (the
# synthesis is redone from items.voice and checked against it). Stores built before it get rows
# from `python -m precompute item-sources` (synthesised items only; a recording's file is unknown).
_ITEM_SOURCES = """
CREATE TABLE item_sources (
    item_id         INTEGER PRIMARY KEY,
    path            VARCHAR,           -- the recording the build read; NULL: synthesised
    file_sha256     VARCHAR,           -- sha256 of that file's bytes; NULL: synthesised
    waveform_sha256 VARCHAR NOT NULL   -- sha256 of the 16 kHz float32 little-endian waveform
);
"""

# Layer x layer matrices (core/metrics/layer_matrix.py, `python -m precompute matrices`): every
# layer of component_a (run_a) against every layer of component_b (run_b, the same run or another
# on the same sentences); lang_a = lang_b = 'mean' for the mean over the languages or language
# pairs (n_langs of them). row_best / col_best mark a row's / column's best match; row_p, col_p
# and the thresholds are calibrated against the null of that line's maximum (best_match.py).
_LAYER_MATRICES = """
CREATE TABLE layer_matrices (
    run_a         VARCHAR NOT NULL,
    run_b         VARCHAR NOT NULL,
    component_a   VARCHAR NOT NULL,
    component_b   VARCHAR NOT NULL,
    pairing       VARCHAR NOT NULL,
    lang_a        VARCHAR NOT NULL,
    lang_b        VARCHAR NOT NULL,
    n_langs       INTEGER NOT NULL,
    layer_a       INTEGER NOT NULL,
    layer_b       INTEGER NOT NULL,
    metric        VARCHAR NOT NULL,
    params        JSON,
    n_samples     INTEGER NOT NULL,
    value         DOUBLE,
    baseline_mean DOUBLE,
    baseline_std  DOUBLE,
    ci_low        DOUBLE,
    ci_high       DOUBLE,
    ci_method     VARCHAR,
    row_best      BOOLEAN NOT NULL,
    row_p         DOUBLE,
    row_threshold DOUBLE,
    col_best      BOOLEAN NOT NULL,
    col_p         DOUBLE,
    col_threshold DOUBLE,
    alpha         DOUBLE NOT NULL,
    n_permutations INTEGER NOT NULL,
    n_bootstrap   INTEGER NOT NULL,
    seed          INTEGER NOT NULL,
    resamples     BLOB,               -- bootstrap values (core.store.vectors); NULL when left out
    PRIMARY KEY (run_a, run_b, component_a, component_b, pairing, lang_a, lang_b, layer_a, layer_b,
                 metric)
);
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "core tables", _CORE_TABLES),
    Migration(2, "indexes for dashboard queries", _DASHBOARD_INDEXES),
    Migration(3, "interface v2: spaces, stages, pooling, per-run item measurements", _INTERFACE_V2),
    Migration(4, "voices, int8 activations, bootstrap values, per-run resource levels",
              _REVIEWED_FINDINGS),
    Migration(5, "item sources: each speech item's recording file or waveform checksum",
              _ITEM_SOURCES),
    Migration(6, "layer x layer matrices", _LAYER_MATRICES),
]

SCHEMA_VERSION: int = MIGRATIONS[-1].id


def _check_ordered(migrations: list[Migration]) -> None:
    ids = [m.id for m in migrations]
    if ids != list(range(1, len(ids) + 1)):
        raise RuntimeError(f"migration ids must be 1..n in order, got {ids}")


_check_ordered(MIGRATIONS)
