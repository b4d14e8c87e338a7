"""The common WebSocket frames, read and written without websockets' general parser.

Most traffic is whole messages in single, uncompressed frames. For those, a loop over the
bytes (header checks, C unmasking, one decode) costs a fraction of the generator-based
parser, and writing them is one ``struct.pack``. Everything else -- fragments, control
frames, compressed frames, anything malformed or over the size limit, a frame cut by the
end of the read -- is left, from its first byte, to websockets' parser, which is between
frames whenever this runs. So the rules (and close codes) are exactly the parser's.
"""

from __future__ import annotations

import os
import struct

# the C speedup when built, else the pure-Python one (websockets.frames picks)
from websockets.frames import apply_mask  # type: ignore[attr-defined]

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack
_KEY_POOL = 4096  # bytes of os.urandom fetched at once: 1024 masking keys per system call
#: masking keys not used yet, taken with ``pop()`` (``KEYS.pop() if KEYS else mask_key()``)
KEYS: list[bytes] = []
_SMALL_COPY = 64 * 1024  # above this a payload is written as its own chunk, not copied
SMALL_FRAME = 16 * 1024  # up to this, ``frame_bytes`` builds a frame as one bytes object
#: the 2-byte heads of frames under 126 bytes, by first byte and size: indexing a tuple
#: costs less than building each head with bytes((first, size))
HEADS = {first: tuple(bytes((first, size)) for size in range(126)) for first in (0x81, 0x82)}
MASKED_HEADS = {first: tuple(bytes((first, 0x80 | size)) for size in range(126))
                for first in (0x81, 0x82)}


def parse_simple(data: bytes | bytearray | memoryview, masked: bool, max_size: int | None,
                 events: list[object]) -> int:
    """Append the messages of the whole, final, unextended text/binary frames at the start
    of ``data`` to ``events``; return how many bytes they took. Stops at the first frame
    that is anything else (or incomplete, or invalid UTF-8)."""
    if type(data) is not bytes:  # (a read into our buffer) one copy, then no bytes() call per
        data = bytes(data)  # frame: slices of bytes are bytes already
    size = len(data)
    pos = 0
    want_mask = 0x80 if masked else 0
    while size - pos >= 2:
        first = data[pos]
        if first != 0x81 and first != 0x82:  # FIN, no RSV bits, text or binary
            break
        second = data[pos + 1]
        if second & 0x80 != want_mask:
            break
        length = second & 0x7F
        at = pos + 2
        if length == 126:
            if size - at < 2:
                break
            length = (data[at] << 8) | data[at + 1]
            at += 2
        elif length == 127:
            if size - at < 8:
                break
            length = int.from_bytes(data[at:at + 8], "big")
            at += 8
        if max_size is not None and length > max_size:
            break
        if masked:
            if size - at < 4:
                break
            key = data[at:at + 4]
            at += 4
        end = at + length
        if end > size:
            break
        payload = apply_mask(data[at:end], key) if masked else data[at:end]
        if first == 0x81:
            try:
                events.append(payload.decode())
            except UnicodeDecodeError:
                break  # the parser fails the connection with its own words
        else:
            events.append(payload)
        pos = end
    return pos


def mask_key() -> bytes:
    """A fresh 4-byte masking key from the operating system's CSPRNG, as ``os.urandom(4)``
    gives, taken from a pool so that most frames cost no system call."""
    if not KEYS:
        pool = os.urandom(_KEY_POOL)
        KEYS.extend([pool[at:at + 4] for at in range(0, _KEY_POOL, 4)])
    return KEYS.pop()


def _forget_keys() -> None:
    KEYS.clear()  # a forked child must not reuse its parent's keys


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_keys)


def frame_bytes(first: int, payload: bytes | bytearray | memoryview, masked: bool
                ) -> bytes | None:
    """One frame (``first``: 0x81 text, 0x82 binary) as one bytes object, for payloads up
    to ``SMALL_FRAME`` bytes (None above: ``build`` writes those without copying)."""
    size = len(payload)
    if size > SMALL_FRAME:
        return None
    if masked:
        key = KEYS.pop() if KEYS else mask_key()
        if size < 126:
            return MASKED_HEADS[first][size] + key + apply_mask(payload, key)
        return _PACK_16(first, 0xFE, size) + key + apply_mask(payload, key)
    if size < 126:
        return HEADS[first][size] + payload
    return _PACK_16(first, 126, size) + payload


def build(first: int, payload: bytes | bytearray | memoryview, masked: bool) -> list[bytes]:
    """One frame (``first``: 0x81 text, 0x82 binary) as the chunks to write."""
    size = len(payload)
    if masked:
        if size < 126:
            head = bytes((first, 0x80 | size))
        elif size < 65536:
            head = _PACK_16(first, 0xFE, size)
        else:
            head = _PACK_64(first, 0xFF, size)
        key = mask_key()
        return [head + key + apply_mask(payload, key)]
    if size < 126:
        head = bytes((first, size))
    elif size < 65536:
        head = _PACK_16(first, 126, size)
    else:
        head = _PACK_64(first, 127, size)
    if size > _SMALL_COPY:
        return [head, payload if type(payload) is bytes else bytes(payload)]
    return [head + payload]


__all__ = ["HEADS", "KEYS", "MASKED_HEADS", "SMALL_FRAME", "apply_mask", "build",
           "frame_bytes", "mask_key", "parse_simple"]
