"""Timestamp formats of spec/semantics.md §4; the current time always arrives as an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def format_timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC; naive datetimes are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 text to an aware UTC datetime; None when it does not parse."""
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except (ValueError, TypeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def add_hours(text: str, hours: float) -> str | None:
    """`text` + `hours`, formatted; None when `text` is not a timestamp."""
    moment = parse_timestamp(text)
    if moment is None:
        return None
    return format_timestamp(moment + timedelta(hours=hours))
