"""Reader of MATLAB level-5 MAT-files (``save -v7`` and older, ``scipy.io.savemat``) in pure numpy.

Only what weight files use: numeric matrices (real or complex, any storage type; logical as uint8), char
arrays and cell arrays; structs, sparse matrices, objects and the like are returned as :class:`Unsupported` markers.  Every
length read from the file is checked against the bytes that hold it, so a corrupt file raises
:class:`MatError` (scipy's compiled reader can crash the interpreter on such files).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

__all__ = ["MatError", "Unsupported", "read_mat"]

_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8", 16: "u1", 17: "u2", 18: "u4"}
_MX_NUMERIC = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_MX_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function handle", 17: "opaque"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MAX_BYTES = 1 << 30  # decompressed size of one variable
_MAX_DEPTH = 16


class MatError(ValueError):
    """The bytes are not a valid level-5 MAT-file."""


class Unsupported(str):
    """Marker for content other than numeric, char or cell arrays (the string names the MATLAB class)."""


def read_mat(data: bytes) -> dict:
    """``{name: value}`` with values numeric arrays, arrays of row strings (char), lists (cell arrays, in
    MATLAB's linear order) or :class:`Unsupported`."""
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise MatError("no level-5 MAT-file header (MATLAB v4 files are not supported; save with -v7 or -v6)")
    order = "<" if data[126:128] == b"IM" else ">"
    version = int.from_bytes(data[124:126], "little" if order == "<" else "big")
    if version != 0x0100:
        raise MatError(f"MAT-file version {version:#x} (v7.3 / HDF5 files are not supported; save with -v7)")
    out: dict = {}
    for typ, payload in _elements(memoryview(data), 128, len(data), order, padded=False):
        if typ == _MI_COMPRESSED:
            typ, payload = _inflate(payload, order)
        if typ != _MI_MATRIX:
            raise MatError(f"top-level element of type {typ} is not a matrix")
        name, value = _matrix(payload, order, 0)
        if name in out:
            raise MatError(f"variable {name!r} appears twice")
        out[name] = value
    return out


def _elements(buf: memoryview, pos: int, end: int, order: str, padded: bool):
    """``(type, payload)`` of consecutive data elements in ``buf[pos:end]``."""
    bo = "little" if order == "<" else "big"
    while pos < end:
        if end - pos < 8:
            if padded and not any(buf[pos:end]):
                return
            raise MatError(f"{end - pos} stray bytes at offset {pos}")
        first = int.from_bytes(buf[pos : pos + 4], bo)
        if first >> 16:  # small data element: up to 4 bytes inside the tag
            typ, n = first & 0xFFFF, first >> 16
            if n > 4:
                raise MatError(f"small data element of {n} bytes at offset {pos}")
            yield typ, buf[pos + 4 : pos + 4 + n]
            pos += 8
            continue
        n = int.from_bytes(buf[pos + 4 : pos + 8], bo)
        start = pos + 8
        if n > end - start:
            raise MatError(f"element at offset {pos} declares {n} bytes, only {end - start} remain (truncated?)")
        yield first, buf[start : start + n]
        pos = start + (n + 7) // 8 * 8 if padded else start + n


def _inflate(payload: memoryview, order: str) -> tuple[int, memoryview]:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(payload), _MAX_BYTES)
    except zlib.error as exc:
        raise MatError(f"corrupt compressed variable ({exc})") from None
    if d.unconsumed_tail:
        raise MatError(f"a compressed variable expands beyond {_MAX_BYTES} bytes")
    items = list(_elements(memoryview(raw), 0, len(raw), order, padded=True))
    if len(items) != 1:
        raise MatError(f"a compressed block holds {len(items)} elements, expected one")
    return items[0]


def _matrix(payload: memoryview, order: str, depth: int) -> tuple[str, object]:
    if depth > _MAX_DEPTH:
        raise MatError("cell arrays nested too deeply")
    subs = _elements(payload, 0, len(payload), order, padded=True)
    flags = _numbers(_next(subs, "array flags"), order, 6)
    dims = _numbers(_next(subs, "dimensions"), order, 5)
    name = _text(_next(subs, "array name"), 1)
    if flags.size != 2 or dims.size < 2 or np.any(dims < 0):
        raise MatError(f"variable {name!r}: malformed array flags or dimensions")
    cls, is_complex = int(flags[0]) & 0xFF, bool(int(flags[0]) & 0x800)
    shape = tuple(int(d) for d in dims)
    count = math.prod(shape)
    if cls in _MX_NUMERIC:
        value = _numeric(subs, order, cls, shape, count, is_complex, name)
    elif cls == 4:
        value = _chars(_next(subs, "char data"), order, shape, count, name)
    elif cls == 1:
        value = [_matrix(_expect_matrix(_next(subs, "cell element")), order, depth + 1)[1] for _ in range(count)]
    else:
        return name, Unsupported(_MX_NAMES.get(cls, f"class {cls}"))
    if next(subs, None) is not None:
        raise MatError(f"variable {name!r}: unexpected data after its values")
    return name, value


def _next(subs, what: str):
    item = next(subs, None)
    if item is None:
        raise MatError(f"missing {what}")
    return item


def _expect_matrix(item) -> memoryview:
    if item[0] != _MI_MATRIX:
        raise MatError(f"cell element of type {item[0]} is not a matrix")
    return item[1]


def _numbers(item, order: str, want: int | None = None) -> np.ndarray:
    typ, payload = item
    if typ not in _MI or (want is not None and typ != want):
        raise MatError(f"data element of type {typ} where {'numbers' if want is None else f'type {want}'} were expected")
    dt = np.dtype(order + _MI[typ])
    if len(payload) % dt.itemsize:
        raise MatError(f"{len(payload)} bytes is not a whole number of {dt} values")
    return np.frombuffer(bytes(payload), dtype=dt)


def _text(item, want: int) -> str:
    typ, payload = item
    if typ != want:
        raise MatError(f"array name of type {typ}")
    return bytes(payload).decode("ascii", errors="replace")


def _numeric(subs, order, cls, shape, count, is_complex, name):
    real = _numbers(_next(subs, "real part"), order)
    if real.size != count:
        raise MatError(f"variable {name!r}: {real.size} values for dimensions {shape}")
    dt = np.dtype(_MX_NUMERIC[cls])
    value = real.astype(dt)
    if is_complex:
        imag = _numbers(_next(subs, "imaginary part"), order)
        if imag.size != count:
            raise MatError(f"variable {name!r}: {imag.size} imaginary values for dimensions {shape}")
        value = value + 1j * imag.astype(dt)
    return value.reshape(shape, order="F")


def _chars(item, order, shape, count, name) -> np.ndarray:
    typ, payload = item
    if typ == 16:
        text = bytes(payload).decode("utf-8", errors="replace")
        codes = np.array([ord(c) for c in text], dtype=np.uint32)
    else:
        codes = _numbers(item, order).astype(np.int64)
        if np.any((codes < 0) | (codes > 0x10FFFF)):
            raise MatError(f"variable {name!r}: invalid character codes")
    if codes.size != count:
        raise MatError(f"variable {name!r}: {codes.size} characters for dimensions {shape}")
    rows = codes.reshape(shape[0], -1, order="F") if count else np.zeros((shape[0], 0), dtype=np.int64)
    return np.array(["".join(map(chr, r)) for r in rows.tolist()])
