"""Calendar months per key 按月统计: what the monthly rules (双排名, the department rates) share.

A monthly rule adds each event to the month of its own ``event_time`` (in the event's UTC offset), sets a timer at
the month's end plus its grace when the month is first seen, and closes the month when the timer fires; an event of
a month already closed is late and not counted. A record sent twice within :data:`SEEN_DAYS` days counts once.

>>> from models.engine.detector import Context
>>> ctx = Context("H1", {}, float("-inf"), {})
>>> e = {"event_time": "2026-10-30T10:00:00+08:00", "region": "310104"}
>>> m = month_of(ctx, e, 3600.0, dict)
>>> m is not None, ctx.timer("2026-10") == month_end("2026-10", "+08:00") + 3600.0, ctx.state["region"]
(True, True, '310104')
>>> first_seen(ctx.state, "2026-10-30", "RX1"), first_seen(ctx.state, "2026-10-30", "RX1")
(True, False)
>>> close(ctx.state, "2026-10") is m, month_of(ctx, e, 3600.0, dict)
(True, None)
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from models.engine.detector import Context
from models.rules.anomaly.daily import first_time

#: Days of record ids remembered to count a record sent twice once (a re-send days later counts again)
SEEN_DAYS = 3


@lru_cache(maxsize=256)
def month_end(month: str, offset: str) -> float:
    """Epoch seconds of the local midnight that ends ``month`` (YYYY-MM) in the UTC ``offset`` of its events.

    >>> month_end("2026-12", "+08:00") - month_end("2026-11", "+08:00")
    2678400.0
    """
    year, m = int(month[:4]), int(month[5:7])
    nxt = f"{year + m // 12}-{m % 12 + 1:02d}"
    return datetime.fromisoformat(f"{nxt}-01T00:00:00{offset or '+00:00'}").timestamp()


def month_of(ctx: Context, event: dict[str, Any], grace_s: float, new: Callable[[], Any]) -> Any:
    """The state of the event's month under ``ctx.state["months"]`` (made with ``new()``, its closing timer set, the
    key's region noted, when first seen); None when that month is closed already (the event is late)."""
    when = event["event_time"]
    month = when[:7]
    st = ctx.state
    if month <= st.get("closed", ""):
        return None
    months = st.setdefault("months", {})
    m = months.get(month)
    if m is None:
        m = months[month] = new()
        ctx.set_timer(month_end(month, when[19:].lstrip(".0123456789")) + grace_s, month)
        st["region"] = event.get("region", "unknown")
    return m


def first_seen(st: dict[str, Any], day: str, event_id: str) -> bool:
    """Whether ``event_id`` is new among the ids of the last :data:`SEEN_DAYS` days seen (and note it)."""
    seen = st.setdefault("seen", {})
    ids = seen.get(day)
    if ids is None:
        ids = seen[day] = []
        for old in sorted(seen)[:-SEEN_DAYS]:
            del seen[old]
    return first_time(ids, event_id)


def close(st: dict[str, Any], month: str) -> Any:
    """Take ``month``'s state out (its timer fired): later events of it are late."""
    m = st["months"].pop(month)
    if not st["months"]:
        del st["months"]
    st["closed"] = max(st.get("closed", ""), month)
    return m
