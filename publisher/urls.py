"""Where things live on the site. Every absolute URL publisher writes is made here (feeds, mail,
canonical links), and so are the page-relative ones its pages use for the site's own files."""

from __future__ import annotations

import re
from urllib.parse import quote

from publisher.config import SiteSettings

ARTICLES_DIR = "articles"
_ATTRIBUTE = re.compile(r'(\s(?:href|src)=")([^"]*)"')


def absolute(site: SiteSettings, path: str) -> str:
    """`path` relative to the site root (no leading slash) as an absolute URL."""
    return site.base_url + quote(path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")


def article_path(slug: str) -> str:
    return f"{ARTICLES_DIR}/{slug}.html"


def article_url(site: SiteSettings, slug: str) -> str:
    return absolute(site, article_path(slug))


def up(path: str) -> str:
    """From the page at `path` (relative to the site root) back to the root: `""` or `"../"`."""
    return "../" * path.count("/")


def relativise(html: str, site: SiteSettings, root: str, index: str) -> str:
    """HTML publisher built, with every href and src into the site made relative to a page `root`
    away from the site's top; the top itself becomes `root + index` (a folder URL opens a listing,
    not the page, when feeds/ is read from disk). Other URLs are left as they are."""
    base = site.base_url

    def local(match: re.Match[str]) -> str:
        url = match.group(2)
        if not url.startswith(base):
            return match.group(0)
        rest = url[len(base) :]
        if not rest or rest[0] in "#?":
            rest = index + rest
        return f'{match.group(1)}{root}{rest}"'

    return _ATTRIBUTE.sub(local, html) if base in html else html
