"""The plain-text format: `date YYYY-MM-DD` and the first paragraph on the first line, then more
paragraphs separated by blank lines. There is no title: it is derived from the lead sentence.
All-capitals lines (the source site's cross-links and promotions) are dropped from the body.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

from publisher.ingest.fields import FieldProblem, Fields
from publisher.ingest.text import derive_summary, derive_title, is_furniture, split_paragraphs

_HEAD = re.compile(r"\A\s*date\b[ \t]*(?P<value>[^\s]*)[ \t]*", re.IGNORECASE)


def parse(text: str, tz: tzinfo, *, title_max: int, summary_max: int) -> Fields:
    head = _HEAD.match(text)
    if head is None:
        first = text.strip().split("\n", 1)[0][:40]
        raise FieldProblem(
            "date", f"missing: the file must start with 'date YYYY-MM-DD' (it starts {first!r})"
        )
    value = head.group("value")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise FieldProblem("date", f"{value or '(nothing)'!r} is not a date in the form YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise FieldProblem("date", f"{value} is not a real date ({exc})") from None
    paragraphs = [p for p in split_paragraphs(text[head.end() :]) if not is_furniture(p)]
    if not paragraphs:
        raise FieldProblem("body", "no story text after the date")
    return Fields(
        title=derive_title(paragraphs, title_max),
        date=datetime.combine(day, time(0, 0), tzinfo=tz),
        summary=derive_summary(paragraphs, summary_max),
        paragraphs=paragraphs,
    )
