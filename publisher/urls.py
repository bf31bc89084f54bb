"""Where things live on the site: every URL publisher writes is made here, absolute."""

from __future__ import annotations

from urllib.parse import quote

from publisher.config import SiteSettings

ARTICLES_DIR = "articles"


def absolute(site: SiteSettings, path: str) -> str:
    """`path` relative to the site root (no leading slash) as an absolute URL."""
    return site.base_url + quote(path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")


def article_path(slug: str) -> str:
    return f"{ARTICLES_DIR}/{slug}.html"


def article_url(site: SiteSettings, slug: str) -> str:
    return absolute(site, article_path(slug))
