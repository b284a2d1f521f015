"""Container-level metadata: PNG chunks, JPEG markers, EXIF orientation, WebP chunks.

OpenCV decodes pixels but drops ICC profiles, sBIT and EXIF; these helpers read
and write that metadata directly from the byte stream.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bdx.errors import InputError

EXIF_APP1_HEADER = b"Exif\0\0"  # a JPEG APP1 segment's prefix to the TIFF-structured EXIF

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- EXIF


def _byte_order(tiff_blob: bytes) -> Literal["<", ">"] | None:
    """The struct byte order of a TIFF-structured blob (``II``: little-endian, ``MM``: big), None if neither."""
    if len(tiff_blob) < 8 or tiff_blob[:2] not in (b"II", b"MM"):
        return None
    return "<" if tiff_blob[:2] == b"II" else ">"


def _orientation_entry(tiff_blob: bytes) -> tuple[str, int] | None:
    """Struct format (byte order and ``H`` for a SHORT, ``I`` for a LONG, which some writers use) and position of
    the orientation tag's value in IFD0 of a TIFF-structured EXIF blob; None when absent or unreadable."""
    end = _byte_order(tiff_blob)
    if end is None:
        return None
    try:
        (ifd_offset,) = struct.unpack(end + "I", tiff_blob[4:8])
        (count,) = struct.unpack(end + "H", tiff_blob[ifd_offset : ifd_offset + 2])
        for i in range(count):
            start = ifd_offset + 2 + 12 * i
            tag, typ = struct.unpack(end + "HH", tiff_blob[start : start + 4])
            if tag == 0x0112 and typ in (3, 4) and start + 8 + 2 * (typ - 2) <= len(tiff_blob):
                return end + ("H" if typ == 3 else "I"), start + 8
    except struct.error:
        return None
    return None


def exif_orientation(tiff_blob: bytes) -> int:
    """Orientation tag (1-8) of a TIFF-structured EXIF blob; 1 when absent or unreadable."""
    found = _orientation_entry(tiff_blob)
    if found is None:
        return 1
    layout, position = found
    (value,) = struct.unpack(layout, tiff_blob[position : position + struct.calcsize(layout)])
    return int(value) if 1 <= value <= 8 else 1


def exif_upright(tiff_blob: bytes) -> bytes:
    """A TIFF-structured EXIF blob with its orientation tag (when present) set to 1: for pixels already stored
    upright. Anything unreadable is returned as it is."""
    found = _orientation_entry(tiff_blob)
    if found is None:
        return tiff_blob
    layout, position = found
    return tiff_blob[:position] + struct.pack(layout, 1) + tiff_blob[position + struct.calcsize(layout) :]


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
EXIF_IFD, GPS_IFD = 34665, 34853  # IFD0 tags pointing to the Exif and GPS sub-IFDs
_INTEROP_IFD = 40965  # a pointer inside the Exif IFD; not carried (it would point nowhere)
_IFD0_TEXT = (271, 272, 305, 306, 315, 33432)  # Make, Model, Software, DateTime, Artist, Copyright


@dataclass(frozen=True)
class _Entry:
    tag: int
    kind: int
    count: int
    value: bytes  # the value's bytes, inline or not


def _read_ifd(blob: bytes, end: str, offset: int) -> list[_Entry]:
    """The entries of the IFD at ``offset`` of a TIFF-structured blob (values fetched from wherever they lie)."""
    (count,) = struct.unpack(end + "H", blob[offset : offset + 2])
    entries = []
    for i in range(count):
        start = offset + 2 + 12 * i
        tag, kind, number = struct.unpack(end + "HHI", blob[start : start + 8])
        size = _TYPE_SIZES.get(kind, 0) * number
        if size == 0:
            continue
        if size <= 4:
            value = blob[start + 8 : start + 8 + size]
        else:
            (where,) = struct.unpack(end + "I", blob[start + 8 : start + 12])
            value = blob[where : where + size]
        if len(value) == size:
            entries.append(_Entry(tag, kind, number, value))
    return entries


def _write_ifd(entries: list[_Entry], end: str, base: int) -> bytes:
    """An IFD of ``entries`` to be placed at file offset ``base`` (even), values longer than 4 bytes after it."""
    entries = sorted(entries, key=lambda entry: entry.tag)
    table = struct.pack(end + "H", len(entries))
    data = b""
    data_start = base + 2 + 12 * len(entries) + 4
    for entry in entries:
        if len(entry.value) <= 4:
            field_value = entry.value.ljust(4, b"\0")
        else:
            field_value = struct.pack(end + "I", data_start + len(data))
            data += entry.value + b"\0" * (len(entry.value) % 2)  # values start on a word boundary
        table += struct.pack(end + "HHI", entry.tag, entry.kind, entry.count) + field_value
    return table + struct.pack(end + "I", 0) + data


@dataclass(frozen=True)
class TiffExif:
    """What a TIFF output carries of an EXIF blob: its byte order, IFD0 text tags (written as ordinary tags)
    and its Exif and GPS sub-IFDs (appended by :func:`tiff_add_exif`)."""

    byteorder: Literal["<", ">"]
    text_tags: tuple[tuple[int, bytes], ...]  # raw bytes: cameras write UTF-8 or Latin-1 in ASCII-typed tags
    sub_ifds: dict[int, list[_Entry]]


def tiff_exif(exif: bytes) -> TiffExif | None:
    """The parts of a TIFF-structured EXIF blob a TIFF output carries; None when it is unreadable."""
    end = _byte_order(exif)
    if end is None:
        return None
    try:
        (first,) = struct.unpack(end + "I", exif[4:8])
        ifd0 = _read_ifd(exif, end, first)
        text = tuple(
            (entry.tag, entry.value.split(b"\0")[0])
            for entry in ifd0
            if entry.tag in _IFD0_TEXT and entry.kind == 2 and entry.value.split(b"\0")[0]
        )
        subs = {}
        for entry in ifd0:
            if entry.tag in (EXIF_IFD, GPS_IFD) and entry.kind in (4, 13) and entry.count == 1:
                (where,) = struct.unpack(end + "I", entry.value)
                subs[entry.tag] = [e for e in _read_ifd(exif, end, where) if e.tag != _INTEROP_IFD]
    except (struct.error, IndexError):
        return None
    return TiffExif(end, text, {tag: entries for tag, entries in subs.items() if entries})


def exif_from_tiff(data: bytes) -> bytes | None:
    """A TIFF file's camera metadata (IFD0's Make, Model, DateTime, Artist, Copyright and its Exif and GPS
    sub-IFDs) as a TIFF-structured EXIF blob for other outputs; None when it holds none or is unreadable."""
    if data[2:4] not in (b"*\0", b"\0*"):  # classic TIFF only (BigTIFF: none carried)
        return None
    found = tiff_exif(data)
    if found is None or not (found.text_tags or found.sub_ifds):
        return None
    end = found.byteorder
    text = [_Entry(tag, 2, len(value) + 1, value + b"\0") for tag, value in found.text_tags]

    def ifd0(pointers: dict[int, int]) -> bytes:
        return _write_ifd(text + [_Entry(tag, 4, 1, struct.pack(end + "I", at)) for tag, at in pointers.items()], end, 8)

    at = 8 + len(ifd0(dict.fromkeys(found.sub_ifds, 0)))  # the sub-IFDs follow IFD0, whose size the pointers keep
    pointers, blocks = {}, []
    for tag, entries in found.sub_ifds.items():
        pad = at % 2
        pointers[tag] = at = at + pad
        block = _write_ifd(entries, end, at)
        blocks.append(b"\0" * pad + block)
        at += len(block)
    header = (b"II*\0" if end == "<" else b"MM\0*") + struct.pack(end + "I", 8)
    return header + ifd0(pointers) + b"".join(blocks)


PLACEHOLDERS = {EXIF_IFD: 65000, GPS_IFD: 65001}  # private tags a TIFF writer takes, renamed once the file is written


def tiff_add_exif(tiff: bytes, exif: TiffExif) -> bytes:
    """A classic TIFF (in ``exif.byteorder``) whose IFD0 holds a :data:`PLACEHOLDERS` tag for each of the
    blob's sub-IFDs, with those sub-IFDs appended and the placeholders turned into pointers to them (IFD0's
    entries sorted again, as TIFF requires)."""
    end = exif.byteorder
    (first,) = struct.unpack(end + "I", tiff[4:8])
    (count,) = struct.unpack(end + "H", tiff[first : first + 2])
    out = bytearray(tiff)
    placeholder_of = {placeholder: tag for tag, placeholder in PLACEHOLDERS.items() if tag in exif.sub_ifds}
    entries = []
    for i in range(count):
        start = first + 2 + 12 * i
        entry = bytes(out[start : start + 12])
        (tag,) = struct.unpack(end + "H", entry[:2])
        if tag in placeholder_of:
            if len(out) % 2:
                out += b"\0"
            base = len(out)
            out += _write_ifd(exif.sub_ifds[placeholder_of[tag]], end, base)
            entry = struct.pack(end + "HHII", placeholder_of[tag], 4, 1, base)
        entries.append(entry)
    entries.sort(key=lambda entry: struct.unpack(end + "H", entry[:2])[0])
    out[first + 2 : first + 2 + 12 * count] = b"".join(entries)
    return bytes(out)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W[, C]) array so that EXIF orientation ``orientation`` displays upright."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(pixels))


# --------------------------------------------------------------------------- PNG


@dataclass
class PngInfo:
    """What bdx needs from a PNG's chunks."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    icc_profile: bytes | None = None
    significant_bits: int | None = None
    orientation: int = 1
    exif: bytes | None = None
    chunk_types: list[str] = field(default_factory=list)
    grey_key: int | None = None  # a grey image's transparent value (tRNS), at its bit depth
    colour_chunks: list[tuple[bytes, bytes]] = field(default_factory=list)  # gAMA, cHRM, sRGB, cICP as (type, body)


PNG_COLOUR_CHUNKS = (b"cHRM", b"gAMA", b"sRGB", b"cICP")  # how the samples encode colour, besides an ICC profile


def _iter_png_chunks(data: bytes):
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise InputError("truncated PNG (chunk header cut off)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise InputError(f"truncated PNG (chunk {ctype.decode('latin-1')!r} cut off)")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise InputError(f"corrupt PNG (bad CRC in chunk {ctype.decode('latin-1')!r})")
        yield ctype, body
        pos = end


def parse_png(data: bytes) -> PngInfo:
    """Validate a PNG's chunk structure and read its header, ICC profile, sBIT and EXIF orientation."""
    if not data.startswith(PNG_SIGNATURE):
        raise InputError("not a PNG file")
    info: PngInfo | None = None
    seen_iend = False
    for ctype, body in _iter_png_chunks(data):
        name = ctype.decode("latin-1")
        if info is None:
            if name != "IHDR" or len(body) != 13:
                raise InputError("corrupt PNG (first chunk is not IHDR)")
            w, h, depth, color_type = struct.unpack(">IIBB", body[:10])
            info = PngInfo(width=w, height=h, bit_depth=depth, color_type=color_type)
            continue
        info.chunk_types.append(name)
        if name == "iCCP":
            sep = body.find(b"\0")
            try:
                info.icc_profile = zlib.decompress(body[sep + 2 :])
            except zlib.error:
                info.icc_profile = None
        elif name == "sBIT":  # one depth for every colour channel; per-channel depths (5,6,5) are left to detection
            channels = body[:3] if info.color_type in (2, 3, 6) else body[:1]
            if channels and len(set(channels)) == 1:
                info.significant_bits = channels[0]
        elif name == "eXIf":
            info.orientation = exif_orientation(body)
            info.exif = body
        elif ctype in PNG_COLOUR_CHUNKS:
            info.colour_chunks.append((ctype, body))
        elif name == "tRNS" and info.color_type == 0 and len(body) >= 2:
            (info.grey_key,) = struct.unpack(">H", body[:2])
        elif name == "IEND":
            seen_iend = True
            break
    if info is None:
        raise InputError("truncated PNG (no IHDR chunk)")
    if not seen_iend:
        raise InputError("truncated PNG (no IEND chunk)")
    if info.width == 0 or info.height == 0:
        raise InputError("PNG has zero width or height")
    return info


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    """One encoded PNG chunk: length, type, body, CRC."""
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_add_chunks(
    png: bytes,
    *,
    icc_profile: bytes | None = None,
    significant_bits: tuple[int, ...] | None = None,
    exif: bytes | None = None,
    colour_chunks: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """Insert colour-encoding (gAMA, cHRM, sRGB, cICP as ``(type, body)``), iCCP, sBIT and eXIf chunks right after
    IHDR of an encoded PNG."""
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
    extra = b"".join(png_chunk(ctype, body) for ctype, body in colour_chunks)
    if icc_profile:
        extra += png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile, 9))
    if significant_bits:
        extra += png_chunk(b"sBIT", bytes(significant_bits))
    if exif:
        extra += png_chunk(b"eXIf", exif)
    return png[:ihdr_end] + extra + png[ihdr_end:]


# --------------------------------------------------------------------------- JPEG

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass
class JpegInfo:
    """What bdx needs from a JPEG's markers."""

    width: int = 0
    height: int = 0
    precision: int = 8
    lossless: bool = False
    components: int = 0
    icc_profile: bytes | None = None
    orientation: int = 1
    exif: bytes | None = None
    arithmetic: bool = False


def parse_jpeg(data: bytes) -> JpegInfo:
    """Read a JPEG's frame header, ICC profile and EXIF orientation; reject truncated files."""
    if not data.startswith(b"\xff\xd8"):
        raise InputError("not a JPEG file")
    info = JpegInfo()
    icc_parts: dict[int, bytes] = {}
    pos = 2
    sos = -1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError("corrupt JPEG (bad marker)")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xDA:
            sos = pos
            break
        if marker in _SOF_MARKERS and len(body) >= 6:
            info.precision = body[0]
            info.height, info.width = struct.unpack(">HH", body[1:5])
            info.components = body[5]
            info.arithmetic = marker >= 0xC9  # SOF9-SOF15: arithmetic coding, which can spend under a bit per block
            info.lossless = marker in (0xC3, 0xC7, 0xCB, 0xCF)
        elif marker == 0xE1 and body.startswith(EXIF_APP1_HEADER):
            info.exif = body[len(EXIF_APP1_HEADER) :]
            info.orientation = exif_orientation(info.exif)
        elif marker == 0xE2 and body.startswith(b"ICC_PROFILE\0") and len(body) > 14:
            icc_parts[body[12]] = body[14:]
        pos += 2 + length
    if sos < 0 or info.components == 0:
        raise InputError("truncated JPEG (no image data)")
    if data.rfind(b"\xff\xd9") < sos:
        raise InputError("truncated JPEG (no end-of-image marker)")
    blocks = -(-info.width // 8) * -(-info.height // 8)
    if not info.arithmetic and (len(data) - sos) * 8 < blocks:  # Huffman codes at least one bit per 8x8 block
        raise InputError(f"truncated JPEG ({info.width}x{info.height} declared in {len(data) - sos} bytes of image data)")
    if icc_parts:
        info.icc_profile = b"".join(icc_parts[k] for k in sorted(icc_parts))
    return info


def jpeg_add_icc(jpeg: bytes, icc_profile: bytes | None) -> bytes:
    """Insert an ICC profile as APP2 segments right after SOI (and APP0 if present)."""
    if not icc_profile:
        return jpeg
    chunk = 65519
    parts = [icc_profile[i : i + chunk] for i in range(0, len(icc_profile), chunk)]
    segments = b""
    for i, part in enumerate(parts, start=1):
        body = b"ICC_PROFILE\0" + bytes([i, len(parts)]) + part
        segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        (length,) = struct.unpack(">H", jpeg[4:6])
        pos = 4 + length
    return jpeg[:pos] + segments + jpeg[pos:]


def jpeg_add_exif(jpeg: bytes, exif: bytes | None) -> bytes:
    """Insert a TIFF-structured EXIF blob as an APP1 segment right after SOI (and APP0 if present); a blob too
    large for one segment is left out."""
    if not exif or len(exif) + 8 > 0xFFFF:
        return jpeg
    body = EXIF_APP1_HEADER + exif
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        (length,) = struct.unpack(">H", jpeg[4:6])
        pos = 4 + length
    return jpeg[:pos] + segment + jpeg[pos:]


# --------------------------------------------------------------------------- WebP


def parse_webp(data: bytes) -> tuple[bytes | None, int, bytes | None]:
    """ICC profile, EXIF orientation and EXIF blob of a WebP file; an animated one is an :class:`InputError` (read as
    its first frame, the animation would be lost without a word)."""
    icc, orientation, exif = None, 1, None
    pos = 12
    while pos + 8 <= len(data):
        ctype = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if ctype in (b"ANIM", b"ANMF"):
            raise InputError("animated WebP; bdx reads one image per file: export the frames first")
        if ctype == b"ICCP":
            icc = body
        elif ctype == b"EXIF":
            exif = body[len(EXIF_APP1_HEADER) :] if body.startswith(EXIF_APP1_HEADER) else body
            orientation = exif_orientation(exif)
        pos += 8 + size + (size & 1)
    return icc, orientation, exif


def icc_description(profile: bytes | None) -> str | None:
    """An ICC profile's 'desc' text when it can be read, else its size; None without a profile."""
    if not profile:
        return None
    try:
        (count,) = struct.unpack(">I", profile[128:132])
        for i in range(count):
            sig, offset, size = struct.unpack(">4sII", profile[132 + 12 * i : 144 + 12 * i])
            if sig == b"desc":
                body = profile[offset : offset + size]
                if body[:4] == b"desc":
                    (length,) = struct.unpack(">I", body[8:12])
                    return body[12 : 12 + length].rstrip(b"\0").decode("latin-1")
                if body[:4] == b"mluc":
                    length, start = struct.unpack(">II", body[20:28])  # first record: length, offset
                    return body[start : start + length].decode("utf-16-be", "replace").rstrip("\0")
    except (struct.error, UnicodeDecodeError):
        pass
    return f"ICC profile ({len(profile)} bytes)"
