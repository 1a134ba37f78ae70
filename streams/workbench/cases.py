"""Cases 案件: alerts grouped per entity and detector family while the incident goes on, and their lifecycle.

An analyst works cases, not alerts: a carrier short-weighting its manifests for three days is one
case of many alerts, a fridge that lost power one case of its power, excursion and breach alerts.
An alert joins the open case of its entity (kind and id) and **family** when it comes within
``gap_s`` of event time of that case's last alert; otherwise it opens a new case. The family is
the detector's own, except that every cold-chain detector of a device is one family (one fridge,
one incident) and a flood summary (``alerts.flood``) belongs to the detector it held back most.

A case's id is a UUIDv5 over its entity, family and first alert id, so replaying the alert topic
rebuilds the same cases with the same ids. An alert sent again under its id (an excursion that
has closed, a redelivery) updates its case without counting twice. A case keeps first and last
seen, the alert count, the money its alerts name, and its strongest alert (highest score) as the
evidence to open first.

Lifecycle 处置流程: ``open`` → ``acknowledged`` → ``in_progress`` → ``closed``, each change by a
user at a time with a comment; closing needs a verdict — ``fraud`` 欺诈骗保, ``violation`` 违规,
``false_positive``, ``duplicate``, ``justified``. Any open state may close directly (a false
positive needs no investigation); a closed case reopens only by a new alert after ``gap_s``,
as a new case. Every change is a :class:`CaseEvent`, the record the workbench writes to
``zhijian.case-events``, from which its state can be rebuilt.

Ownership 指派: a case is assigned to one user at a time, with a due date 办理时限 set by its institution's risk
grade when assigned (:data:`DUE_DAYS`); anyone may add a comment. Both are case events too (``assign``,
``comment``), kept and replayed like the status changes.

>>> book = CaseBook(gap_s=7 * 86400)
>>> def alert(n, day, detector="waste.weight_discrepancy", entity=("carrier", "CR-2"), **numbers):
...     return {"alert_id": f"a{n}", "detector": detector, "stream": "waste", "entity": {"kind": entity[0],
...             "id": entity[1]}, "institution_id": "H1", "region": "310101", "score": 1.0 + n / 10,
...             "event_time": f"2026-10-{day:02d}T10:00:00+00:00", "status": "open", "numbers": numbers}
>>> [book.add(alert(n, 1 + n // 10)).case_id for n in range(31)].count(book.add(alert(0, 1)).case_id)
31
>>> [c] = book.cases.values()
>>> c.alerts, c.first_seen, c.last_seen, c.strongest
(31, '2026-10-01T10:00:00+00:00', '2026-10-04T10:00:00+00:00', 'a30')
>>> book.add(alert(40, 20)).case_id == c.case_id                    # two weeks later: a new incident
False
>>> e = c.change("acknowledged", user="analyst-1", at="2026-10-05T09:00:00+08:00", comment="calling the carrier")
>>> e.kind, c.status
('status', 'acknowledged')
>>> try:
...     c.change("closed", user="analyst-1", at="2026-10-06T09:00:00+08:00")
... except CaseError as err:
...     print(err)
closing a case needs a verdict: fraud, violation, false_positive, duplicate or justified
>>> c.assign("analyst-2", user="supervisor-1", at="2026-10-05T10:00:00+08:00", grade="red").due
'2026-10-08T10:00:00+08:00'
>>> c.note("carrier called back", user="analyst-2", at="2026-10-05T11:00:00+08:00").kind, c.assignee
('comment', 'analyst-2')
>>> c.change("closed", user="analyst-1", at="2026-10-06T09:00:00+08:00", verdict="violation").verdict
'violation'
>>> c.assign("analyst-2", user="supervisor-1", at="2026-10-07T10:00:00+08:00")
Traceback (most recent call last):
...
streams.workbench.cases.CaseError: a closed case is not assigned
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from models.contracts.alert import money_named

#: Namespace of case ids (a fixed random UUID; never change it).
CASE_NAMESPACE = uuid.UUID("1b0f3f4c-7d7e-4a43-9c55-2a9c5d8e6b21")
STATUSES = ("open", "acknowledged", "in_progress", "closed")
VERDICTS = ("fraud", "violation", "false_positive", "duplicate", "justified")
#: status → the statuses a user may move a case to
TRANSITIONS = {"open": ("acknowledged", "in_progress", "closed"), "acknowledged": ("in_progress", "closed"),
               "in_progress": ("closed",), "closed": ()}
#: 办理时限: days from assignment to the due date, by the institution's risk grade (a case of an institution not
#: yet graded gets the yellow time). A red institution's case is worked within three days, as the 飞行检查 plans
#: ask of leads with strong grounds; a blue one's within a month, the reporting cycle of routine reviews.
DUE_DAYS = {"red": 3, "orange": 7, "yellow": 15, "blue": 30, "": 15}


#: 不良执业行为记分 — the points a case weighs on its institution. A suspicion (a case not yet closed) weighs a
#: point; a confirmed case weighs by its verdict: fraud 欺诈骗保 the 12 points at which the provinces' 记分 rules
#: suspend billing within a cycle, a violation 违规 half of that. A case closed as a false positive, justified or
#: a duplicate weighs nothing.
POINTS = {"open": 1.0, "fraud": 12.0, "violation": 6.0}
#: Points fade with event time since the case's last alert: half after this many days, so that a 记分周期 of
#: twelve months holds a confirmed fraud at a quarter of its weight at its end, and an old suspicion fades away.
POINTS_HALF_LIFE_DAYS = 180.0
#: Institution points → its grade 记分等级 (the risk grade's colours): a confirmed fraud keeps its institution red
#: for 47 days (12 → 10 points) and orange for 227, a confirmed violation orange for 47 days; three open
#: suspicions make it yellow.
POINT_GRADES = ((10.0, "red"), (5.0, "orange"), (2.5, "yellow"), (0.0, "blue"))


def case_points(case: "Case", now_t: float) -> float:
    """The points a case weighs now (event time ``now_t``).

    >>> c = Case("c", "institution", "H1", "claim.over_standard", "claim", "H1", "310101",
    ...          "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00")
    >>> t = _t("2026-01-01T00:00:00+00:00")
    >>> case_points(c, t), round(case_points(c, t + 180 * 86400), 3)
    (1.0, 0.5)
    >>> c.status, c.verdict = "closed", "fraud"
    >>> case_points(c, t)
    12.0
    >>> c.verdict = "false_positive"
    >>> case_points(c, t)
    0.0
    """
    weight = POINTS["open"] if case.status != "closed" else POINTS.get(case.verdict or "", 0.0)
    age_days = max(0.0, now_t - _t(case.last_seen)) / 86400.0
    return weight * 0.5 ** (age_days / POINTS_HALF_LIFE_DAYS)


def points_grade(points: float) -> str:
    """
    >>> points_grade(11.9), points_grade(6.5), points_grade(2.0)
    ('red', 'orange', 'blue')
    """
    return next(grade for floor, grade in POINT_GRADES if points >= floor)


class CaseError(ValueError):
    """A change the lifecycle does not allow (the message says why)."""


def family_of(alert: dict[str, Any]) -> str:
    """The family an alert's case is grouped by."""
    detector = alert["detector"]
    if detector == "alerts.flood":
        by = alert.get("numbers", {}).get("by_detector") or {}
        detector = max(sorted(by), key=by.get) if by else detector
    if detector.startswith("coldchain."):
        return "coldchain"
    return detector


def money_of(alert: dict[str, Any]) -> float:
    return money_named(alert.get("numbers") or {})


def _t(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class CaseEvent:
    """One change of a case, as written to ``zhijian.case-events`` (key: the case id)."""

    case_id: str
    kind: str  # opened | alert | status | assign | comment
    at: str
    user: str | None = None
    status: str | None = None
    verdict: str | None = None
    comment: str | None = None
    alert_id: str | None = None
    assignee: str | None = None
    due: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Case:
    case_id: str
    entity_kind: str
    entity_id: str
    family: str
    stream: str
    institution_id: str
    region: str
    first_seen: str
    last_seen: str
    status: str = "open"
    verdict: str | None = None
    alerts: int = 0
    money: float = 0.0
    strongest: str | None = None
    strongest_score: float = float("-inf")
    alert_ids: dict[str, float] = field(default_factory=dict)  # alert id → the money it named (an update replaces)
    history: list[CaseEvent] = field(default_factory=list)
    number: str = ""  # the short number people say (2026-000123); the console gives it, the id stays the key
    assignee: str | None = None
    due: str | None = None

    def _take(self, alert: dict[str, Any]) -> None:
        aid = alert["alert_id"]
        if aid not in self.alert_ids:
            self.alerts += 1
        self.money += money_of(alert) - self.alert_ids.get(aid, 0.0)
        self.alert_ids[aid] = money_of(alert)
        if alert["event_time"] > self.last_seen:
            self.last_seen = alert["event_time"]
        if alert["event_time"] < self.first_seen:
            self.first_seen = alert["event_time"]
        if alert.get("score", 0.0) > self.strongest_score:
            self.strongest, self.strongest_score = aid, alert.get("score", 0.0)

    def change(self, status: str, *, user: str, at: str, comment: str | None = None,
               verdict: str | None = None) -> CaseEvent:
        """Move the case along its lifecycle; raises :class:`CaseError` for a change it does not allow."""
        if status not in STATUSES:
            raise CaseError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        if status not in TRANSITIONS[self.status]:
            raise CaseError(f"a case {self.status} cannot become {status}")
        if status == "closed" and verdict not in VERDICTS:
            raise CaseError("closing a case needs a verdict: " + ", ".join(VERDICTS[:-1]) + f" or {VERDICTS[-1]}")
        if status != "closed" and verdict is not None:
            raise CaseError("a verdict is given when the case is closed")
        self.status, self.verdict = status, verdict
        event = CaseEvent(self.case_id, "status", at, user=user, status=status, verdict=verdict, comment=comment)
        self.history.append(event)
        return event

    def assign(self, assignee: str, *, user: str, at: str, grade: str = "", due: str | None = None,
               comment: str | None = None) -> CaseEvent:
        """Give the case to ``assignee``; the due date is ``at`` plus the grade's :data:`DUE_DAYS` unless given
        (a replayed event keeps the date it was given)."""
        if self.status == "closed":
            raise CaseError("a closed case is not assigned")
        if not assignee:
            raise CaseError("assign to whom? name a user")
        if due is None:
            due = (datetime.fromisoformat(at) + timedelta(days=DUE_DAYS.get(grade, DUE_DAYS[""]))).isoformat()
        self.assignee, self.due = assignee, due
        event = CaseEvent(self.case_id, "assign", at, user=user, assignee=assignee, due=due, comment=comment)
        self.history.append(event)
        return event

    def note(self, comment: str, *, user: str, at: str) -> CaseEvent:
        """A comment on the case's thread (its status stays)."""
        if not comment.strip():
            raise CaseError("an empty comment says nothing")
        event = CaseEvent(self.case_id, "comment", at, user=user, comment=comment)
        self.history.append(event)
        return event

    def overdue(self, now: str) -> bool:
        """Assigned, not closed, and past its due date at ``now`` (an ISO time)."""
        return bool(self.due) and self.status != "closed" and _t(self.due) < _t(now)


class CaseBook:
    """Cases built from alerts (see the module)."""

    def __init__(self, gap_s: float = 7 * 86400.0) -> None:
        self.gap_s = gap_s
        self.cases: dict[str, Case] = {}
        self._open: dict[tuple[str, str, str], str] = {}  # (kind, id, family) → its latest case
        self._of_alert: dict[str, str] = {}  # alert id → case id

    def add(self, alert: dict[str, Any]) -> Case:
        """File an alert (a record of ``zhijian.alerts``, as a dict) into its case; return the case."""
        aid = alert["alert_id"]
        known = self._of_alert.get(aid)
        if known is not None:  # an update of an alert already filed
            case = self.cases[known]
            case._take(alert)
            return case
        family = family_of(alert)
        key = (alert["entity"]["kind"], alert["entity"]["id"], family)
        latest = self.cases.get(self._open.get(key, ""))
        t = _t(alert["event_time"])
        if latest is None or latest.status == "closed" or t - _t(latest.last_seen) > self.gap_s:
            case_id = str(uuid.uuid5(CASE_NAMESPACE, f"{key[0]}:{key[1]}|{family}|{aid}"))
            latest = self.cases[case_id] = Case(case_id, key[0], key[1], family, alert.get("stream", ""),
                                                alert.get("institution_id", ""), alert.get("region", ""),
                                                alert["event_time"], alert["event_time"])
            latest.history.append(CaseEvent(case_id, "opened", alert["event_time"], alert_id=aid))
            self._open[key] = case_id
        else:
            latest.history.append(CaseEvent(latest.case_id, "alert", alert["event_time"], alert_id=aid))
        self._of_alert[aid] = latest.case_id
        latest._take(alert)
        return latest
