"""Images beside an article in seeds/: checked by their bytes, copied into feeds/images/ under a
name made of their content (never overwritten), shown on the page (relative URL), in the feeds and
in the digest (absolute URL, width limited, alt kept: tests/test_digest_pictures.py). Oversized
files and anything that is not really an image are one warning naming the file."""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import html

from publisher import pipeline
from publisher.ingest.images import NotAnImage, sniff
from publisher.store import cache, db
from tests.conftest import NOW, Project


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A real PNG (Chromium draws it), made by hand: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xdb\x00\x04\x00\x00"  # a (truncated) quantisation table: skipped by its length
    + b"\xff\xc0\x00\x11\x08"
    + struct.pack(">HH", 480, 640)
    + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"  # start of scan
    + b"\x12\xff\x00\x34\x56"  # entropy-coded data (0xFF stuffed with 0x00)
    + b"\xff\xd9"  # end of image
)
GIF = b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00\x00\x00\x00;"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + ((99) | (49 << 14)).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(3, 2), ("png", 3, 2)),
        (JPEG, ("jpg", 640, 480)),
        (JPEG + b"\x00" * 64 + b"MotionPhoto", ("jpg", 640, 480)),  # a camera's data after the end
        (GIF, ("gif", 32, 16)),
        (WEBP, ("webp", 100, 50)),
    ],
)
def test_the_bytes_decide_the_type_and_size(data: bytes, expected: tuple[str, int, int]) -> None:
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><script/></svg>",
            "SVG is not accepted",
        ),
        (b"<svg onload='alert(1)'/>", "SVG is not accepted"),
        (b"GIF89a but really a letter", "a damaged GIF image"),
        (b"Dear editor, this is not a photo.", "not a JPEG, PNG, GIF or WebP image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a damaged JPG image"),
        (png(1, 1)[:16] + b"\x00" * 8, "a damaged PNG image"),
    ],
)
def test_anything_else_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(NotAnImage, match=message):
        sniff(data)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of(
    width: int, height: int, rows: bytes, *, depth: int = 8, colour: int = 2, interlace: int = 0
) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def test_an_interlaced_or_one_bit_png_is_whole() -> None:
    """The completeness check counts rows as PNG lays them out: Adam7 passes, bits per pixel."""
    passes = (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    )
    rows = b""
    for x0, y0, dx, dy in passes:
        w, h = -(-(10 - x0) // dx), -(-(5 - y0) // dy)
        if w > 0 and h > 0:
            rows += (b"\x00" + b"\x80" * 3 * w) * h
    assert sniff(png_of(10, 5, rows, interlace=1)) == ("png", 10, 5)
    with pytest.raises(NotAnImage, match="incomplete"):
        sniff(png_of(10, 5, rows[: len(rows) // 2], interlace=1))
    one_bit = (b"\x00" + b"\xff\xc0") * 3  # 10 pixels of 1 bit: 2 bytes a row
    assert sniff(png_of(10, 3, one_bit, depth=1, colour=0)) == ("png", 10, 3)
    with pytest.raises(NotAnImage, match="incomplete"):
        sniff(png_of(10, 4, one_bit, depth=1, colour=0))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # Claims 60000×60000 (3.6 billion pixels) in a few dozen bytes: accepted before.
        (
            png_of(60000, 60000, b"\x00" * 100),
            "too many pixels: 60000×60000 is 3,600,000,000 (limit 89,478,485)",
        ),
        (GIF[:6] + struct.pack("<HH", 60000, 60000) + GIF[10:], "too many pixels: 60000×60000"),
        # Rows missing: the IDAT inflates to half the picture, then IEND.
        (
            png_of(100, 100, (b"\x00" + b"\x01" * 300) * 50),
            "a damaged PNG image (its image data is incomplete)",
        ),
        # The IDAT chunk cut short (its length claims more), an IEND patched on the end.
        (
            png(40, 40)[:60] + png_chunk(b"IEND", b""),
            "a damaged PNG image (its image data is incomplete)",
        ),
        # A flipped byte in the image data: its CRC no longer matches.
        (
            png(40, 40)[:45] + bytes([png(40, 40)[45] ^ 1]) + png(40, 40)[46:],
            "a damaged PNG image (its image data is incomplete)",
        ),
        (png_of(4, 4, b"\x00" * 52, colour=5), "a damaged PNG image (unknown pixel format)"),
        (JPEG.replace(struct.pack(">HH", 480, 640), struct.pack(">HH", 60000, 60000)), "too many pixels"),
        (JPEG[:-4], "a damaged JPG image (its image data is incomplete)"),
        (JPEG[: JPEG.index(b"\xff\xda")], "a damaged JPG image (its image data is incomplete)"),
        (WEBP[:4] + (100).to_bytes(4, "little") + WEBP[8:], "a damaged WEBP image (cut short)"),
    ],
    ids=[
        "png-60000x60000",
        "gif-60000x60000",
        "png-rows-missing",
        "png-idat-cut",
        "png-bad-crc",
        "png-format",
        "jpeg-60000x60000",
        "jpeg-cut-in-its-scan",
        "jpeg-without-a-scan",
        "webp-cut",
    ],
)
def test_absurd_or_incomplete_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(NotAnImage) as info:
        sniff(data)
    assert str(info.value).startswith(message)


def test_a_png_bomb_is_one_warning_and_the_article_is_published(project: Project) -> None:
    project.seed("bomb.png", png_of(60000, 60000, b"\x00" * 1000))
    project.seed("a.md", "---\ntitle: Pictures\ndate: 2025-02-17\n---\nSee ![the map](bomb.png).\n")
    result = project.cli("check")
    assert result.code == 0
    assert result.out.splitlines() == [
        "warning: seeds/bomb.png: image: too many pixels: 60000×60000 is 3,600,000,000 (limit 89,478,485); "
        "scale it down; not shown in seeds/a.md",
        "1 file checked, 1 valid, 0 rejected, 1 warning",
    ]
    pipeline.build(project.settings(), NOW)
    page = (project.feeds / "articles" / "a.html").read_text(encoding="utf-8")
    assert "<img" not in page and "the map" in page
    assert not (project.feeds / "images").exists()


ARTICLE = (
    "---\ntitle: Harbour reopens\ndate: 2025-02-17\n---\nBoats are out.\n\n![Boats at dawn](harbour.png)\n"
)


def _img(page: Path) -> list[dict[str, str]]:
    return [dict(img.attrib) for img in html.fromstring(page.read_bytes()).xpath("//img")]


def test_an_image_is_copied_by_content_and_shown_everywhere(project: Project) -> None:
    picture = png(800, 400)
    project.seed("desk/harbour.png", picture)
    project.seed("desk/harbour.md", ARTICLE)
    report = pipeline.build(project.settings(), NOW)
    assert report.problems == []
    name = f"images/{hashlib.sha256(picture).hexdigest()[:20]}.png"
    assert (project.feeds / name).read_bytes() == picture
    assert (project.seeds / "desk" / "harbour.png").read_bytes() == picture  # copied, never moved
    (img,) = _img(project.feeds / "articles" / "harbour.html")
    assert img == {"src": f"../{name}", "alt": "Boats at dawn", "width": "600", "height": "300"}
    page = html.fromstring((project.feeds / "articles" / "harbour.html").read_bytes())
    assert page.xpath("//meta[@property='og:image']/@content") == [f"https://news.example.org/{name}"]
    assert page.xpath("//meta[@name='twitter:card']/@content") == ["summary_large_image"]
    entry = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0]
    assert f'src="https://news.example.org/{name}"' in entry.content[0].value
    # The article HTML the digest is made from: absolute URL, width at most 600, alt kept.
    conn = db.connect(project.settings().db_path)
    try:
        (article,) = cache.load_articles(conn, [entry.id]).values()
    finally:
        conn.close()
    (mail_img,) = html.fromstring(article.body_html).xpath("//img")
    assert mail_img.get("src") == f"https://news.example.org/{name}"
    assert (mail_img.get("alt"), mail_img.get("width")) == ("Boats at dawn", "600")


def test_a_changed_image_gets_a_new_name_and_republishes(project: Project) -> None:
    """The old file stays (never overwritten); the page, the feed entry and `updated` move."""
    project.seed("harbour.png", png(20, 10))
    project.seed("harbour.md", ARTICLE)
    pipeline.build(project.settings(), NOW)
    first = sorted(p.name for p in (project.feeds / "images").iterdir())
    before = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0].updated_parsed
    newer = png(20, 10, (10, 10, 200))
    project.seed("harbour.png", newer)  # the article's own file does not change
    report = pipeline.build(project.settings(), NOW + timedelta(days=1))
    assert report.changed == 1
    names = sorted(p.name for p in (project.feeds / "images").iterdir())
    new_name = f"{hashlib.sha256(newer).hexdigest()[:20]}.png"
    assert names == sorted([*first, new_name])
    assert _img(project.feeds / "articles" / "harbour.html")[0]["src"] == f"../images/{new_name}"
    after = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0].updated_parsed
    assert after > before
    assert pipeline.build(project.settings(), NOW + timedelta(days=2)).skipped  # and then it rests


COVER = "---\ntitle: Harbour reopens\ndate: 2025-02-17\nimage: {image}\n---\nBoats are out.\n"


def _og_image(project: Project) -> list[str]:
    page = html.fromstring((project.feeds / "articles" / "harbour.html").read_bytes())
    return [str(url) for url in page.xpath("//meta[@property='og:image']/@content")]


def test_a_changed_cover_picture_or_cover_key_republishes(project: Project) -> None:
    """A front-matter `image` shown only outside the body (Open Graph, digest): a new picture in
    the same file, or the key naming another file, moves the page like a body picture does."""
    project.seed("cover.png", png(40, 20))
    project.seed("other.png", png(40, 20, (0, 90, 0)))
    project.seed("harbour.md", COVER.format(image="cover.png"))
    pipeline.build(project.settings(), NOW)
    newer = png(40, 20, (10, 10, 200))
    project.seed("cover.png", newer)  # the article's own file does not change
    assert pipeline.build(project.settings(), NOW + timedelta(days=1)).changed == 1
    assert _og_image(project) == [f"https://news.example.org/{name_of(newer)}"]
    assert (project.feeds / name_of(newer)).read_bytes() == newer
    project.seed("harbour.md", COVER.format(image="other.png"))
    assert pipeline.build(project.settings(), NOW + timedelta(days=2)).changed == 1
    assert _og_image(project) == [f"https://news.example.org/{name_of(png(40, 20, (0, 90, 0)))}"]
    assert pipeline.build(project.settings(), NOW + timedelta(days=3)).skipped


def name_of(data: bytes) -> str:
    return f"images/{hashlib.sha256(data).hexdigest()[:20]}.png"


def test_refused_images_are_one_warning_naming_the_file(project: Project) -> None:
    project.configure("[ingest]\nmax_image_bytes = 2000\n")
    project.seed("big.png", png(200, 200) + b"\x00" * 3000)
    project.seed("letter.jpg", b"Dear editor, this is not a photo.")
    project.seed("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    project.seed(
        "a.md",
        "---\ntitle: Pictures\ndate: 2025-02-17\n---\nSee ![a big one](big.png), ![a letter](letter.jpg), "
        "![the logo](logo.svg), ![gone](missing.png) and ![out](../outside.png).\n",
    )
    result = project.cli("check")
    assert result.code == 0  # the article is good; its pictures are not
    assert result.out.splitlines() == [
        "warning: seeds/a.md: image: image missing.png not found in seeds/; not shown",
        "warning: seeds/a.md: image: image '../outside.png' is outside seeds/; not shown",
        f"warning: seeds/big.png: image: too large: {len(png(200, 200)) + 3000:,} bytes (limit 2,000, "
        "ingest.max_image_bytes); not shown in seeds/a.md",
        "warning: seeds/letter.jpg: image: not a JPEG, PNG, GIF or WebP image; not shown in seeds/a.md",
        "warning: seeds/logo.svg: image: SVG is not accepted (it can carry scripts); convert it to PNG; "
        "not shown in seeds/a.md",
        "1 file checked, 1 valid, 0 rejected, 5 warnings",
    ]
    pipeline.build(project.settings(), NOW)
    page = (project.feeds / "articles" / "a.html").read_text(encoding="utf-8")
    assert "<img" not in page and "a big one" in page and "the logo" in page  # alt text stays
    assert not (project.feeds / "images").exists()


def test_a_missing_image_that_arrives_is_shown_by_the_next_build(project: Project) -> None:
    project.seed("harbour.md", ARTICLE)
    first = pipeline.build(project.settings(), NOW)
    assert [p.message for p in first.problems] == ["image harbour.png not found in seeds/; not shown"]
    project.seed("harbour.png", png(4, 4))
    second = pipeline.build(project.settings(), NOW + timedelta(hours=1))
    assert second.problems == [] and second.parsed == 1
    assert _img(project.feeds / "articles" / "harbour.html")[0]["alt"] == "Boats at dawn"


def test_images_are_not_stray_files_in_seeds(project: Project) -> None:
    """A picture in seeds/ is not reported as 'not an article file' (other strays still are)."""
    project.seed("harbour.png", png(2, 2))
    project.seed("notes.docx", b"PK")
    result = project.cli("check")
    assert result.out.splitlines()[0] == (
        "warning: seeds/notes.docx: file: not an article file (.txt, .md or .markdown); ignored"
    )
    assert "harbour.png" not in result.out
