"""The images articles show, copied from seeds/ into feeds/images/ as the build writes their pages.

Ingest named each image by its bytes (publisher/ingest/images.py), so a name in feeds/images/ always
holds the same bytes: a file already there is never written again (never overwritten), and the
bytes copied are checked against the hash ingest saw. Nothing in seeds/ is moved or changed. Images
are copied into the same batch as the page, before it, so a page never shows an image not yet in
place. Old images are kept: feed readers and mail already delivered may still show them.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from publisher.models import Article, escape_name
from publisher.output import Batch

log = logging.getLogger("publisher.build")


def copy(batch: Batch, seeds: Path, feeds: Path, article: Article, queued: set[str]) -> None:
    """Queue into `batch` each image of `article` not in feeds/ yet (`queued`: names this process
    has queued in this build, so two articles sharing an image write it once)."""
    for source, name, sha256 in article.images:
        if name in queued or (feeds / name).is_file():
            continue
        try:
            data = (seeds / source).read_bytes()
        except OSError as exc:
            where, what = escape_name(article.source), escape_name(source)
            log.warning("%s: cannot read image %s: %s", where, what, exc.strerror or exc)
            continue
        if hashlib.sha256(data).hexdigest() != sha256:
            # Changed since the article was read: the next build reads it again under a new name.
            log.warning(
                "%s: image %s changed while building; copied by the next build",
                escape_name(article.source),
                escape_name(source),
            )
            continue
        batch.write(name, data)
        queued.add(name)
