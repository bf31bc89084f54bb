"""publisher: seeds/ in; Atom, RSS, JSON Feed, pages and an email digest out."""

__version__ = "0.1.0"
