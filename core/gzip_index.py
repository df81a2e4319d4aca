"""A gzip file read at any offset without decompressing it from the start each time.

A ``.tar.gz`` is one deflate stream: Python's ``gzip`` module can only seek backwards by starting
over, so reading the clips of a FLEURS audio archive in the order a build wants them (shortest
first) would decompress the archive once per clip. :class:`IndexedGzipReader` keeps a checkpoint
(a copy of the zlib decompressor, which holds the 32 KiB window it needs) every ``spacing`` bytes
of output as it first reads through the file; a later seek resumes from the nearest checkpoint
before the target. Memory: about 40 KiB per checkpoint (roughly 1% of the uncompressed size at
the default 4 MiB spacing), never the archive's contents.
"""

from __future__ import annotations

import bisect
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SPACING = 4 << 20
_CHUNK = 1 << 16
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass
class _Checkpoint:
    out_offset: int        # uncompressed bytes before this point
    in_offset: int         # compressed bytes fed before this point
    state: Any             # a zlib decompressor (zlib.decompressobj()) at this point


class IndexedGzipReader(io.RawIOBase):
    """A read-only, seekable view of the uncompressed bytes of a gzip file (several concatenated
    gzip members are read as one stream, as ``gzip`` does)."""

    def __init__(self, path: Path | str, spacing: int = DEFAULT_SPACING) -> None:
        super().__init__()
        self.path = Path(path)
        self.spacing = spacing
        self._file = self.path.open("rb")
        self._checkpoints = [_Checkpoint(0, 0, zlib.decompressobj(_GZIP_WBITS))]
        self._offsets = [0]         # the checkpoints' output offsets, for bisect
        self._indexed_to = 0        # output offset up to which checkpoints are complete
        self._size: int | None = None
        self._position = 0
        self._start_at(self._checkpoints[0])

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints recorded so far (one at the start, then one per ``spacing`` bytes read)."""
        return len(self._checkpoints)

    # ----------------------------------------------------------------- io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._read_size()
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        self._position = offset
        return offset

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._read_size() - self._position
        if size == 0:
            return b""
        self._move_to(self._position)
        pieces, wanted = [], size
        while wanted > 0:
            piece = self._next_output(wanted)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece)
        data = b"".join(pieces)
        self._position += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()

    # ----------------------------------------------------------------- decompression
    def _start_at(self, checkpoint: _Checkpoint) -> None:
        self._decoder = checkpoint.state.copy()
        self._file.seek(checkpoint.in_offset)
        self._in_offset = checkpoint.in_offset
        self._out_offset = checkpoint.out_offset
        self._pending = b""   # output decompressed but not yet handed out

    def _move_to(self, target: int) -> None:
        """Put the decoder at output offset ``target``: straight on when it is a little ahead,
        else from the nearest checkpoint at or before it."""
        here = self._out_offset - len(self._pending)
        if target < here or target - here > self.spacing:
            best = self._checkpoints[bisect.bisect_right(self._offsets, target) - 1]
            if target < here or best.out_offset > here:
                self._start_at(best)
                here = best.out_offset
        while here < target:
            piece = self._next_output(min(target - here, _CHUNK * 16))
            if not piece:
                break
            here += len(piece)

    def _next_output(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of output at the decoder's position (b"" at the end)."""
        while not self._pending:
            if not self._decompress_chunk():
                return b""
        piece, self._pending = self._pending[:limit], self._pending[limit:]
        return piece

    def _decompress_chunk(self) -> bool:
        """Feed one compressed chunk; False at the end of the file."""
        data = self._file.read(_CHUNK)
        if not data:
            if not self._decoder.eof and self._in_offset > 0:
                raise EOFError(f"{self.path} ends before its gzip stream does (truncated?)")
            return False
        produced: list[bytes] = []
        while data:
            try:
                produced.append(self._decoder.decompress(data))
            except zlib.error as exc:
                raise OSError(f"{self.path} is not a readable gzip file at compressed byte "
                              f"{self._in_offset}: {exc}") from None
            consumed = len(data) - len(self._decoder.unused_data)
            self._in_offset += consumed
            data = self._decoder.unused_data
            if self._decoder.eof and data:  # a further gzip member follows
                if data.strip(b"\0"):
                    self._decoder = zlib.decompressobj(_GZIP_WBITS)
                else:
                    self._in_offset += len(data)
                    data = b""
        out = b"".join(produced)
        self._out_offset += len(out)
        self._pending += out
        self._maybe_checkpoint()
        return True

    def _maybe_checkpoint(self) -> None:
        """A checkpoint at a chunk boundary past the indexed part, every ``spacing`` bytes."""
        if self._out_offset <= self._indexed_to:
            return
        self._indexed_to = self._out_offset
        if self._out_offset - self._checkpoints[-1].out_offset >= self.spacing:
            self._checkpoints.append(_Checkpoint(self._out_offset, self._in_offset,
                                                 self._decoder.copy()))
            self._offsets.append(self._out_offset)

    def _read_size(self) -> int:
        """The uncompressed size (reads through the file once, recording checkpoints)."""
        if self._size is None:
            position = self._position
            self._move_to(self._indexed_to)
            while self._decompress_chunk():
                self._pending = b""
            self._size = self._out_offset
            self._position = position
        return self._size
