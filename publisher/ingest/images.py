"""Images beside an article in seeds/: found, checked and named by their content.

A Markdown image with a relative target (`![Boats at dawn](harbour.jpg)`) names a file relative to
the article's own folder. It is accepted only when:
- it lies inside seeds/ (symbolic links followed, as for articles);
- it is at most `ingest.max_image_bytes` long (seen by fstat, before reading);
- its bytes are really a JPEG, PNG, GIF or WebP image whose size in pixels can be read (the file
  name's extension does not count), of at most `MAX_PIXELS` pixels, and whole: a PNG's every chunk
  and CRC, and image data that inflates to every row its header promises; a JPEG's scan and its
  end marker; a WebP's every byte its RIFF header counts. SVG is
  refused: it is a document that can carry scripts and links, and sanitising it is out of scope;
  convert it to PNG.

An accepted image is named by its bytes, `images/<first 20 hex digits of sha256>.<type>`, so a
changed image gets a new name (pages, feeds and digests that showed the old one keep working) and
a file in feeds/images/ is never overwritten. The build copies it there (publisher/build/images.py);
nothing in seeds/ is moved or changed. A refused image is one warning naming the file; the article
is still published, its image replaced by its alt text.

Every file looked at is remembered with the size and modification time seen (`Images.assets`), so
a build re-reads the article when one of them changes, appears or goes.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

IMAGES_DIR = "images"
# More pixels than this (width × height) is refused, whatever the file's size in bytes: a small
# file can claim a picture that takes gigabytes to show. Pillow's decompression-bomb limit
# (Image.MAX_IMAGE_PIXELS, a 0.25 GB RGB image), about 9,500 × 9,500.
MAX_PIXELS = 89_478_485
_INFLATE_STEP = 1 << 20
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True, slots=True)
class Image:
    """An accepted image: where it is in seeds/, its name under feeds/, its size in pixels."""

    source: str  # relative to seeds/, forward slashes
    name: str  # relative to feeds/: images/<hash>.<type>
    sha256: str
    width: int
    height: int


class NotAnImage(ValueError):
    """The bytes are not an image we accept (the message says why)."""


def sniff(data: bytes) -> tuple[str, int, int]:
    """(type, width, height) of a whole JPEG, PNG, GIF or WebP image; NotAnImage otherwise."""
    kind, width, height = dimensions(data)
    if kind == "png":
        _png_complete(data, width, height)
    elif kind == "webp" and int.from_bytes(data[4:8], "little") + 8 > len(data):  # RIFF counts every byte
        raise NotAnImage("a damaged WEBP image (cut short)")
    elif kind == "jpg" and not _jpeg_complete(data):
        raise NotAnImage("a damaged JPG image (its image data is incomplete)")
    return kind, width, height


def dimensions(data: bytes) -> tuple[str, int, int]:
    """(type, width, height) as the image's header gives them, within the bounds on them; the
    image data is not followed (`sniff` does that, for bytes nothing has vouched for yet)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if data[12:16] != b"IHDR" or len(data) < 24 or b"IEND" not in data[-12:]:
            raise NotAnImage("a damaged PNG image (cut short?)")
        width, height = struct.unpack(">II", data[16:24])
        return _checked("png", width, height)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 14 or not data.endswith(b";"):  # 0x3B: a GIF's trailer
            raise NotAnImage("a damaged GIF image (cut short?)")
        width, height = struct.unpack("<HH", data[6:10])
        return _checked("gif", width, height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _checked("webp", *_webp_size(data))
    if data.startswith(b"\xff\xd8\xff"):
        return _checked("jpg", *_jpeg_size(data))
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
        raise NotAnImage("SVG is not accepted (it can carry scripts); convert it to PNG")
    raise NotAnImage("not a JPEG, PNG, GIF or WebP image")


def _checked(kind: str, width: int, height: int) -> tuple[str, int, int]:
    if not (0 < width <= 65535 and 0 < height <= 65535):
        raise NotAnImage(f"a damaged {kind.upper()} image (its size reads {width}×{height})")
    if width * height > MAX_PIXELS:
        raise NotAnImage(
            f"too many pixels: {width}×{height} is {width * height:,} (limit {MAX_PIXELS:,}); scale it down"
        )
    return kind, width, height


# PNG colour type -> channels; Adam7 interlacing passes as (x0, y0, dx, dy).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_complete(data: bytes, width: int, height: int) -> None:
    """NotAnImage unless every chunk is whole (length and CRC) up to IEND, and the image data
    inflates to all the rows the header promises: a file cut short and patched with an IEND is
    as damaged as one without."""
    damaged = NotAnImage("a damaged PNG image (its image data is incomplete)")
    at, stream, seen_end = 8, zlib.decompressobj(), False
    bit_depth, colour, interlace = data[24], data[25], data[28] if len(data) > 28 else 0
    if colour not in _PNG_CHANNELS or bit_depth not in (1, 2, 4, 8, 16):
        raise NotAnImage("a damaged PNG image (unknown pixel format)")
    bits = bit_depth * _PNG_CHANNELS[colour]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            expected += h * (1 + -(-(w * bits) // 8))
    inflated = 0
    while at + 12 <= len(data) and not seen_end:
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if len(body) < length or data[at + 8 + length : at + 12 + length] != struct.pack(
            ">I", zlib.crc32(kind + body)
        ):
            raise damaged
        if kind == b"IDAT" and not stream.eof:
            try:  # counted in bounded pieces, never held: the size was checked against MAX_PIXELS
                piece = stream.decompress(body, _INFLATE_STEP)
                while piece:
                    inflated += len(piece)
                    if inflated >= expected:
                        return
                    piece = stream.decompress(stream.unconsumed_tail, _INFLATE_STEP)
            except zlib.error:
                raise damaged from None
        seen_end = kind == b"IEND"
        at += 12 + length
    raise damaged


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The size from the first start-of-frame marker (SOF0–SOF15 but DHT, JPG and DAC)."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return 0, 0
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if at + 9 > len(data):
                return 0, 0
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if length < 2:
            return 0, 0
        at += 2 + length
    return 0, 0


def _jpeg_complete(data: bytes) -> bool:
    """Whether the markers lead to a start of scan and an end-of-image marker follows it (inside
    the scan, 0xFF is never followed by 0xD9; a camera may append data after the end)."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF or marker in (0x01, *range(0xD0, 0xD8)):
            at += 1 if marker == 0xFF else 2
            continue
        if marker == 0xDA:
            return data.find(b"\xff\xd9", at) != -1
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return False


@dataclass
class Images:
    """The images of one article, resolved as its Markdown is rendered."""

    seeds: Path
    article: str  # the article's path relative to seeds/
    limit: int  # ingest.max_image_bytes
    label: str  # how seeds/ is named in messages: "seeds/"
    found: list[Image] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path shown, message)
    assets: list[tuple[str, int, int]] = field(default_factory=list)  # (source, size, mtime_ns)

    def resolve(self, target: str) -> Image | None:
        """The image a relative Markdown target names, or None (with a warning) when refused."""
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(self.article), unquote(target)))
        where = f"{self.label}{self.article}"
        if rel.startswith("../") or rel in ("..", ".") or rel.startswith("/"):
            self.warnings.append((where, f"image {target!r} is outside {self.label}; not shown"))
            return None
        shown = f"{self.label}{rel}"
        try:
            data, size, mtime_ns = self._read(rel)
        except FileNotFoundError:
            self.assets.append((rel, -1, -1))  # appears later: the article is read again
            self.warnings.append((where, f"image {rel} not found in {self.label}; not shown"))
            return None
        except _Refused as exc:
            self.assets.append((rel, exc.size, exc.mtime_ns))
            self.warnings.append((shown, f"{exc}; not shown in {where}"))
            return None
        self.assets.append((rel, size, mtime_ns))
        try:
            kind, width, height = sniff(data)
        except NotAnImage as exc:
            self.warnings.append((shown, f"{exc}; not shown in {where}"))
            return None
        digest = hashlib.sha256(data).hexdigest()
        image = Image(rel, f"{IMAGES_DIR}/{digest[:20]}.{kind}", digest, width, height)
        self.found.append(image)
        return image

    def _read(self, rel: str) -> tuple[bytes, int, int]:
        path = self.seeds / rel
        seen = path.stat()  # follows links; FileNotFoundError when missing or dangling
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(Path(os.path.realpath(self.seeds))):
            raise _Refused("symbolic link leads outside seeds/; refused", seen.st_size, seen.st_mtime_ns)
        fd = os.open(real, _READ_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Refused("not a regular file", seen.st_size, seen.st_mtime_ns)
            if info.st_size > self.limit:
                message = f"too large: {info.st_size:,} bytes (limit {self.limit:,}, ingest.max_image_bytes)"
                raise _Refused(message, info.st_size, info.st_mtime_ns)
            chunks: list[bytes] = []
            remaining = self.limit + 1
            while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            if len(data) > self.limit:  # grew while we looked
                raise _Refused(f"too large: more than {self.limit:,} bytes", info.st_size, info.st_mtime_ns)
            return data, info.st_size, info.st_mtime_ns
        finally:
            os.close(fd)


class _Refused(Exception):
    def __init__(self, message: str, size: int, mtime_ns: int) -> None:
        super().__init__(message)
        self.size = size
        self.mtime_ns = mtime_ns


def asset_changed(seeds: Path, source: str, size: int, mtime_ns: int) -> bool:
    """Whether a file an article used differs from what was seen when it was read."""
    try:
        info = (seeds / source).stat()
    except OSError:
        return size != -1
    return (info.st_size, info.st_mtime_ns) != (size, mtime_ns)
