"""publisher: seeds/ in; Atom, RSS, JSON Feed, pages and an email digest out."""

from pathlib import Path

__version__ = "0.1.0"

# The templates shipped inside the package (package data); an operator's `paths.templates` folder
# overrides them file by file.
BUNDLED_TEMPLATES = Path(__file__).resolve().parent / "templates"
