"""Split a TCP byte stream into whole PDU frames.

SMPP has no resynchronisation marker: once a command_length is unusable
(< 16, or above our limit) the rest of the stream cannot be trusted, so
both cases are fatal for the session (a generic_nack, then close).
"""

from __future__ import annotations

from smsgw.smpp.pdu import HEADER_SIZE
from smsgw.smpp.status import CommandStatus

DEFAULT_MAX_PDU_SIZE = 70_000  # 64K message_payload + mandatory part + headers


class FramingError(Exception):
    """Unusable command_length: answer generic_nack(status, sequence), then close."""

    close = True

    def __init__(self, status: CommandStatus, sequence: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.sequence = sequence
        self.detail = detail


class Framer:
    """Buffers partial input; `next_frame()` yields one complete frame at a time."""

    def __init__(self, *, max_pdu_size: int = DEFAULT_MAX_PDU_SIZE) -> None:
        self.max_pdu_size = max_pdu_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> bytes | None:
        """The next whole frame, None if more bytes are needed; FramingError if bad."""
        if len(self._buf) < HEADER_SIZE:
            return None
        length = int.from_bytes(self._buf[0:4], "big")
        sequence = int.from_bytes(self._buf[12:16], "big")
        if length < HEADER_SIZE:
            raise FramingError(
                CommandStatus.ESME_RINVCMDLEN, sequence, f"command_length {length} < 16"
            )
        if length > self.max_pdu_size:
            raise FramingError(
                CommandStatus.ESME_RINVCMDLEN,
                sequence,
                f"command_length {length} > max_pdu_size {self.max_pdu_size}",
            )
        if len(self._buf) < length:
            return None
        frame = bytes(self._buf[:length])
        del self._buf[:length]
        return frame
