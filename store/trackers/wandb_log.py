"""The framing of a W&B run file (`run-<id>.wandb`): a LevelDB-style record log.

wandb >= 0.20 reads these files only in its Go core, so the framing is read here: a
7-byte file header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each
`crc32 (4) | length (2) | type (1) | data`, type FULL, or FIRST/MIDDLE.../LAST for a
record split across blocks; the CRC is zlib's, seeded with the chunk type. A block's
tail shorter than a chunk header is zero padding. Each record is one
`wandb.proto.wandb_internal_pb2.Record`, decoded with wandb's own protobuf classes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from store.errors import BadInputError

HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_SEED = {kind: zlib.crc32(bytes([kind])) for kind in (FULL, FIRST, MIDDLE, LAST)}


class LogReader:
    """Records of one run file, read again later from where the last read stopped (a
    live run's file grows). A record cut off at the end is retried on the next read; a
    chunk that fails its checksum, or a file that is not a W&B run file, is refused."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.records = 0
        self._offset = 0  # where the next unread chunk starts

    def read(self) -> Iterator[bytes]:
        with self.file.open("rb") as fh:
            data = fh.read()
        if self._offset == 0:
            if len(data) < len(HEADER):
                return  # not written yet
            if data[: len(HEADER)] != HEADER:
                raise BadInputError("not a W&B run file (no ':W&B' header)", file=str(self.file))
            self._offset = len(HEADER)
        pos, parts = self._offset, []
        while True:
            left = BLOCK - pos % BLOCK
            if left < CHUNK_HEADER:
                if len(data) - pos < left:
                    return
                pos += left  # the block's zero padding
                continue
            if len(data) - pos < CHUNK_HEADER:
                return
            crc, length, kind = struct.unpack_from("<IHB", data, pos)
            if kind == 0 and length == 0 and crc == 0:
                return  # zeros past the end of what was written (preallocated space)
            end = pos + CHUNK_HEADER + length
            if kind not in _SEED or length > left - CHUNK_HEADER:
                self._damaged(pos, "a chunk header makes no sense")
            if len(data) < end:
                return  # cut off: the writer has not finished this chunk
            chunk = data[pos + CHUNK_HEADER : end]
            if zlib.crc32(chunk, _SEED[kind]) != crc:
                self._damaged(pos, "fails its checksum")
            pos = end
            if kind == FULL:
                parts = [chunk]
            elif kind == FIRST:
                parts = [chunk]
                continue
            else:
                parts.append(chunk)
                if kind == MIDDLE:
                    continue
            self._offset = pos  # only whole records move the mark
            self.records += 1
            yield b"".join(parts)
            parts = []

    def _damaged(self, pos: int, why: str) -> None:
        raise BadInputError(
            f"damaged W&B run file: the chunk at byte {pos} (record {self.records + 1}) {why}",
            file=str(self.file),
        )
