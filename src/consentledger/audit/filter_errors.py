"""The audit page's answer to a bad filter: a small HTML page that says, in a sentence each, what to fix.

The JSON API answers bad query parameters with `{"error": "invalid_request", ...}`; a person who typed
`?since=2026-12-01` into the address bar gets this page instead (status 422), naming the parameter
and the form it takes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from consentledger.audit.render import content_security_policy

EXPECTED = {
    "subject": "a data subject's address: 0x followed by 40 hexadecimal digits",
    "org": "an organisation's address: 0x followed by 40 hexadecimal digits",
    "record": "a record id: 64 hexadecimal digits, optionally after 0x",
    "purpose": "a purpose id (a number up to 999) or a purpose name (letters, digits, _ . -)",
    "since": "a moment in Unix seconds, a whole number such as 1764547200",
    "until": "a moment in Unix seconds, a whole number such as 1764547200",
    "token": "the token of a link printed by `consentledger audit open` (at most 200 characters)",
}
"""The form each of the page's query parameters takes, as the sentence shows it."""


def filter_problems(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return one plain sentence per rejected query parameter, naming it, the value given and the form expected."""
    sentences: list[str] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        name = loc[-1] if loc else "?"
        given = error.get("input")
        form = EXPECTED.get(name)
        if form is None:
            sentences.append(f"The parameter “{name}” was not accepted: {error.get('msg', 'invalid value')}.")
            continue
        sentence = f"The filter “{name}” must be {form}; it was “{given}”."
        if isinstance(given, str) and (unix := _as_unix(given)) is not None and name in ("since", "until"):
            sentence += f" For {given} (UTC) use {name}={unix}."
        sentences.append(sentence)
    return sentences


def render_filter_error_page(sentences: Sequence[str], *, back_href: str) -> str:
    """Return the HTML page listing `sentences`, with a link back to the unfiltered page at `back_href`."""
    items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in sentences)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(served=True)}">',
        '<meta name="referrer" content="no-referrer">',
        "<title>Audit: the filter could not be applied</title>",
        "</head>",
        "<body>",
        "<h1>The filter could not be applied</h1>",
        f'<ul id="filter-errors">{items}</ul>',
        f'<p><a href="{html.escape(back_href, quote=True)}">Show the page without filters</a></p>',
        "</body>",
        "</html>",
        "",
    ])


def _as_unix(text: str) -> int | None:
    """Return `text` (an ISO date or date-time, UTC unless it says otherwise) in Unix seconds, or None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
