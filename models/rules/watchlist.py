"""Watch lists 重点监管名单 and excluded providers 黑名单, as the detectors look them up.

The workbench edits them; ``zhijian.watchlist`` (compacted, key ``entity_kind:entity_id``) carries them to
every worker, which keeps per entry its list, factor and last day (:mod:`streams.worker.reference`). Two uses:

* a **watch-listed** entity (an institution, a prescriber or doctor, a pharmacy, a carrier) is judged at
  stricter limits: the per-event rules that name a limit multiply it by the entry's ``factor`` (0.5 when
  none is given) — a prescriber watched for over-supply is held to 3.5 days' outpatient supply, not 7;
* an **excluded** provider may not bill or prescribe at all: every claim or prescription naming it raises
  an alert (``claim.excluded_provider``, ``prescription.excluded_prescriber``).

An entry applies up to and including its ``until`` day (event time); a prescriber and a doctor are the
same person under two names (the prescription stream says prescriber, the claims doctor), so either kind
lists them.

>>> table = {"watchlist": {"prescriber:D7": {"list": "watch", "factor": 0.5},
...                        "institution:H9": {"list": "excluded", "until": "2026-12-31"}}}
>>> watch_factor(table, [("doctor", "D7"), ("institution", "H1")], "2026-11-01")
0.5
>>> excluded(table, [("institution", "H9"), ("doctor", "D7")], "2026-11-01"), excluded(table, [("institution", "H9")], "2027-01-01")
([('institution', 'H9')], [])
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

#: a watch-listed entity's limits are multiplied by this when its entry names no factor
DEFAULT_FACTOR = 0.5
#: the kinds one person is listed under
SAME_PERSON = {"prescriber": ("prescriber", "doctor"), "doctor": ("doctor", "prescriber")}


def _entries(reference: Mapping[str, Any], kind: str, ident: str, day: str) -> Iterable[dict[str, Any]]:
    table = reference.get("watchlist") or {}
    if not table or not ident:
        return
    for k in SAME_PERSON.get(kind, (kind,)):
        entry = table.get(f"{k}:{ident}")
        if entry is not None and (not entry.get("until") or day <= entry["until"]):
            yield entry


def watch_factor(reference: Mapping[str, Any], entities: Iterable[tuple[str, str]], day: str) -> float:
    """The strictest factor among the watch-listed entities (1.0: none is watched)."""
    factor = 1.0
    for kind, ident in entities:
        for entry in _entries(reference, kind, ident, day):
            if entry["list"] == "watch":
                factor = min(factor, float(entry.get("factor") or DEFAULT_FACTOR))
    return factor


def excluded(reference: Mapping[str, Any], entities: Iterable[tuple[str, str]], day: str) -> list[tuple[str, str]]:
    """The excluded providers among ``entities``, each once, in order."""
    out: list[tuple[str, str]] = []
    for kind, ident in entities:
        if (kind, ident) not in out and any(e["list"] == "excluded" for e in _entries(reference, kind, ident, day)):
            out.append((kind, ident))
    return out
