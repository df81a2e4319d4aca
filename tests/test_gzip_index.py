"""core.gzip_index: any byte range of a gzip file, read from checkpoints, equals the same range of
its decompressed contents; bad files fail with a clear error."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest

from core.gzip_index import IndexedGzipReader


@pytest.fixture
def payload() -> bytes:
    rng = np.random.default_rng(0)
    # incompressible, very compressible, then incompressible again: checkpoints fall unevenly
    return rng.bytes(300_000) + b"abc" * 200_000 + rng.bytes(500_000)


def test_random_reads_match_the_decompressed_bytes(tmp_path, payload):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(payload))
    reader = IndexedGzipReader(path, spacing=100_000)
    rng = np.random.default_rng(1)
    for _ in range(200):
        start = int(rng.integers(0, len(payload)))
        size = int(rng.integers(0, 50_000))
        reader.seek(start)
        assert reader.read(size) == payload[start:start + size]
        assert reader.tell() == min(start + size, len(payload))
    assert reader.seek(0, io.SEEK_END) == len(payload)
    assert reader.read(10) == b""
    assert reader.n_checkpoints > 3  # the index was built as it read


def test_concatenated_gzip_members_read_as_one_stream(tmp_path, payload):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(payload[:400_000]) + gzip.compress(payload[400_000:]))
    reader = IndexedGzipReader(path, spacing=64_000)
    reader.seek(399_990)
    assert reader.read(20) == payload[399_990:400_010]
    reader.seek(0)
    assert reader.read() == payload


def test_tarfile_reads_members_through_it(tmp_path):
    members = {f"test/{i}.wav": bytes([i]) * (1000 * i + 7) for i in range(1, 30)}
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(fileobj=IndexedGzipReader(path, spacing=8_000), mode="r:") as tar:
        infos = {m.name: m for m in tar.getmembers()}
        for name in reversed(list(members)):  # backwards: every read seeks back
            assert tar.extractfile(infos[name]).read() == members[name]


def test_truncated_and_corrupt_files_fail_clearly(tmp_path, payload):
    whole = gzip.compress(payload)
    truncated = tmp_path / "cut.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EOFError, match="cut.gz ends before its gzip stream"):
        IndexedGzipReader(truncated).read()
    corrupt = tmp_path / "bad.gz"
    corrupt.write_bytes(whole[:20] + bytes(200) + whole[220:])
    with pytest.raises(OSError, match="bad.gz is not a readable gzip file"):
        IndexedGzipReader(corrupt).read()
