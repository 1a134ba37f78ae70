"""A claim's versions 结算版本: originals, replacements and voids, judged by the latest.

Real claim feeds correct themselves (../shared/brief/claims-lifecycle.md): a settlement is withdrawn and settled
again (撤销后重新结算, 退费), reversed (冲正), or — in US exports — replaced or voided by a claim of frequency 7 or
8 that names the original. The claim contract carries it: ``adjustment`` (original, replacement or void),
``original_claim_id`` (when the correction comes under an id of its own) and ``version`` (the order). A claim's
*family* is the original's id; a rule or a ledger that keeps what a claim contributed keeps it by family, takes
back what an earlier version contributed when a replacement comes, takes it back for good when a void comes, and
ignores a version not newer than the one it applied (a late or re-sent one).

>>> original = {"claim_id": "C7"}
>>> replacement = {"claim_id": "C7", "adjustment": "replacement", "version": 2}
>>> refund = {"claim_id": "S-9", "original_claim_id": "C7", "adjustment": "void", "version": 3}
>>> [(family(e), version(e), adjustment(e)) for e in (original, replacement, refund)]
[('C7', 1, 'original'), ('C7', 2, 'replacement'), ('C7', 3, 'void')]
>>> seen = {}
>>> [admit(seen, e, "2026-11-05") for e in (original, original, replacement, original, refund)]
['new', 'stale', 'replaces', 'stale', 'voids']
"""
from __future__ import annotations

from typing import Any


def family(event: dict[str, Any]) -> str:
    """The id of the claim this version belongs to (the original's)."""
    return event.get("original_claim_id") or event["claim_id"]


def version(event: dict[str, Any]) -> int:
    return int(event.get("version") or 1)


def adjustment(event: dict[str, Any]) -> str:
    return event.get("adjustment") or "original"


def admit(applied: dict[str, list[Any]], event: dict[str, Any], day: str) -> str:
    """Note a version in ``applied`` (family → [version applied, day]); what it is to the holder of that memory:
    ``new`` (a claim not seen), ``replaces`` (a newer version of one seen: take back what the earlier gave, then
    apply this), ``voids`` (take back what the earlier gave, for good) or ``stale`` (not newer than the version
    applied: ignore it)."""
    fam, v = family(event), version(event)
    kept = applied.get(fam)
    if kept is not None and v <= kept[0]:
        return "stale"
    applied[fam] = [v, day]
    if adjustment(event) == "void":
        return "voids"
    return "new" if kept is None else "replaces"


def forget_before(applied: dict[str, list[Any]], horizon: str) -> dict[str, list[Any]]:
    """The memory without the families last seen before ``horizon`` (a day)."""
    return {f: v for f, v in applied.items() if v[1] >= horizon}


def counted_once(state: dict[str, Any], event: dict[str, Any]) -> bool:
    """For a rule that adds claims up per day (a rate, a share): whether this version counts. An original counts; a
    void counts, negatively (the refund 退费 takes its claim back out), and is remembered in ``state["voided"]``; a
    replacement counts only after a void of its claim (settled again), not as a price correction of a claim that
    still counts. :func:`forget_voids` drops the voids of more than a week.

    >>> st = {}
    >>> [counted_once(st, e) for e in ({"claim_id": "C1", "event_time": "2026-11-05T10:00:00+08:00"},
    ...     {"claim_id": "C1", "adjustment": "replacement", "version": 2},
    ...     {"claim_id": "C1", "adjustment": "void", "version": 3, "event_time": "2026-11-06T10:00:00+08:00"},
    ...     {"claim_id": "C1", "adjustment": "replacement", "version": 4})]
    [True, False, True, True]
    """
    how, fam = adjustment(event), family(event)
    if how == "void":
        state.setdefault("voided", {})[fam] = event["event_time"][:10]
    elif how == "replacement":
        voided = state.get("voided", {})
        if fam not in voided:
            return False  # a price correction: what the claim counted for has not changed
        del voided[fam]
    return True


def forget_voids(state: dict[str, Any], week_ago: str) -> None:
    """Forget the voids noted before ``week_ago`` (a refund's void is followed by its settlement within days)."""
    if state.get("voided"):
        state["voided"] = {f: d for f, d in state["voided"].items() if d >= week_ago}
