"""The workbench's console 工作台: the cases built from the alerts, their queue, and who may do what to them.

:class:`Console` has no I/O: the web application (:mod:`streams.workbench.web`) hands it the records of
``zhijian.alerts`` (every alert from the beginning, no consumer group), each filed into its case
(:mod:`streams.workbench.cases`); the case events kept in its store (:mod:`streams.workbench.store`) are
replayed onto the cases, and every new change is written there and (by the web application) to
``zhijian.case-events``.

It also follows ``zhijian.institution-scores`` (:mod:`streams.workbench.risk.scorer`): each institution's risk grade
红/橙/黄/蓝 and its history, shown beside its cases and on the institution's page. Each case goes
to the grid 网格 of its region (a table ``region → grid`` given with ``--grids``; a region not in it
is its own grid), and the queue filters by grid and by grade.

Every case gets a short number people can say and type (``2026-000123``: the year of its first alert and a
sequence), given once when the console first sees the case and kept in the store; the UUID stays its key.
Cases are found by number, id, institution, entity (doctor, prescriber, device, carrier, patient pseudonym) and
by the ids of the records their alerts rest on (a claim, a prescription, a manifest): :meth:`Console.search`.

Users sign in (scrypt-hashed passwords, a signed session cookie); every form carries the session's
CSRF token. Roles: an ``analyst`` changes cases of claims, prescriptions and medical waste, an
``operator`` cold-chain cases, a ``supervisor`` any; all see every case. Patients appear only as
their pseudonyms, as in the alerts.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from sortedcontainers import SortedList

from models.contracts.records import InvalidRecord, validate
from streams.workbench.cases import CaseBook, CaseError, case_points
from streams.workbench.priority import CONFIRMING, CasePriority, case_features
from streams.workbench.reports import Reports
from streams.workbench.store import Store

log = logging.getLogger(__name__)

SESSION_COOKIE = "zj_session"
SESSION_S = 12 * 3600
#: role → the streams whose cases it may change (None: all)
MAY_CHANGE: dict[str, set[str] | None] = {"analyst": {"claim", "prescription", "waste"}, "operator": {"telemetry"},
                                          "supervisor": None}
STREAMS = ("prescription", "claim", "waste", "telemetry")
GRADES = ("red", "orange", "yellow", "blue")
GRADE_RANK = {g: i for i, g in enumerate(GRADES)}
#: days of score history kept per institution
HISTORY_DAYS = 400
#: the most cases a search lists
SEARCH_LIMIT = 200


def _searchable(alert: dict[str, Any]) -> set[str]:
    """The identifiers an alert can be found by: its entity and institution, the ids of its evidence records
    (claim, prescription, manifest …) and the identifiers among its numbers (``*_id`` fields and lists of them)."""
    terms = {alert["entity"]["id"], alert.get("institution_id") or ""}
    terms.update(e.get("event_id", "") for e in alert.get("evidence") or ())
    for k, v in (alert.get("numbers") or {}).items():
        if k.endswith(("_id", "_ids", "patients", "members")):
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, str):
                    terms.add(x)
    terms.discard("")
    return {t.casefold() for t in terms if len(t) <= 80}

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Console:
    """The cases and who may do what to them (no I/O: the web handlers and the followers call it)."""

    def __init__(self, store: Store, grids: dict[str, str] | None = None, pseudonymize: Any = None) -> None:
        self.store = store
        self.pseudonymize = pseudonymize  # the region's pseudonymizer (a patient looked up by raw id), or None
        self.grids = grids or {}  # region → grid 网格
        self.scores: dict[str, dict[str, Any]] = {}  # institution → its latest score record
        self.history: dict[str, dict[str, tuple[float, str]]] = {}  # institution → day → (score, grade)
        self.book = CaseBook()
        self.alerts: dict[str, dict[str, Any]] = {}  # alert id → its latest record
        self.pending = store.events()  # case events waiting for their case to be rebuilt
        self._key = store.secret()
        # the queue's order, kept as cases change (a page reads its first rows instead of sorting every case):
        # open before closed, then the institution's grade (red first), the strongest alert, the oldest incident
        self._order: SortedList = SortedList()
        self._place_of: dict[str, tuple[Any, ...]] = {}  # case id → its key in _order
        self._cases_of: dict[str, set[str]] = {}  # institution (or an entity that is one) → its case ids
        self.families: set[str] = set()
        self.now, self.now_t = "", 0.0  # the newest alert's event time: what points fade towards
        self.watchlist: dict[str, dict[str, Any]] = {}  # entity_kind:entity_id → entry, as zhijian.watchlist holds it
        self.reports = Reports()  # the monthly reports of zhijian.reports (streams.workbench.reports)
        self.priority = CasePriority()  # learned from the verdicts (streams.workbench.priority); orders the queue once ready
        self._points: dict[str, tuple[float, float]] = {}  # institution → (now_t, its points then)
        self._points_dirty: set[str] = set()  # institutions a case of which changed since
        self.grid_names: set[str] = set()
        self._numbers = store.case_numbers()  # case id → (year, sequence), given once and kept
        self._next: dict[int, int] = {}  # year → its highest sequence given
        for year, seq in self._numbers.values():
            self._next[year] = max(self._next.get(year, 0), seq)
        self._new_numbers: list[tuple[str, int, int]] = []  # given since the last flush to the store
        self._index: dict[str, set[str]] = {}  # search term (casefolded) → case ids

    # -- cases
    def add_alert(self, alert: dict[str, Any]) -> None:
        if alert.get("status") == "withdrawn" and alert["alert_id"] not in self.alerts:
            return  # withdrawn by a correction before anyone saw it: no case to open
        self.alerts[alert["alert_id"]] = alert
        case = self.book.add(alert)
        if case.last_seen > self.now:
            self.now, self.now_t = case.last_seen, datetime.fromisoformat(case.last_seen).timestamp()
        if case.case_id not in self._place_of:
            for inst in {case.institution_id, case.entity_id}:
                self._cases_of.setdefault(inst, set()).add(case.case_id)
            self.families.add(case.family)
            self.grid_names.add(self.grid_of(case))
            case.number = self._number(case)
            for term in (case.number, case.case_id):
                self._index.setdefault(term.casefold(), set()).add(case.case_id)
        for term in _searchable(alert):
            self._index.setdefault(term, set()).add(case.case_id)
        self._place(case)

    def _number(self, case: Any) -> str:
        """The case's short number: the one it was given before, or the next of its first alert's year."""
        given = self._numbers.get(case.case_id)
        if given is None:
            year = int(case.first_seen[:4])
            given = self._numbers[case.case_id] = (year, self._next.get(year, 0) + 1)
            self._next[year] = given[1]
            self._new_numbers.append((case.case_id, *given))
        return f"{given[0]}-{given[1]:06d}"

    def flush_numbers(self) -> None:
        """Keep the numbers given since the last flush (after each batch of alerts read)."""
        if self._new_numbers:
            rows, self._new_numbers = self._new_numbers, []
            self.store.add_case_numbers(rows)

    def search(self, query: str) -> list[Any]:
        """The cases found by a case number, a case id, an institution, an entity or a source record's id (exact,
        any case), newest incident first."""
        q = query.strip().casefold()
        if not q:
            return []
        ids = set(self._index.get(q, ()))
        if not ids and len(q) >= 8:  # the first characters of a case id, as the old queue showed them
            ids = {cid for cid in self.book.cases if cid.startswith(q)}
        cases = sorted(map(self.book.cases.__getitem__, ids), key=lambda c: (c.last_seen, c.case_id), reverse=True)
        return cases[:SEARCH_LIMIT]

    def search_patient(self, raw_id: str) -> tuple[str, list[Any]]:
        """The cases of a patient looked up by the raw identifier (pseudonymized here, never kept or logged):
        (its pseudonym, the cases). Raises PermissionError when this console holds no key."""
        if self.pseudonymize is None:
            raise PermissionError("this console holds no pseudonymization key (ZHIJIAN_PSEUDONYM_KEY)")
        pseudonym = self.pseudonymize(raw_id)
        return pseudonym, self.search(pseudonym)

    def _place(self, case: Any) -> None:
        """(Re)file a case in the queue's order after anything its place depends on changed."""
        self._points_dirty.update((case.institution_id, case.entity_id))
        key = self._queue_key(case)
        old = self._place_of.get(case.case_id)
        if old == key:  # most alerts join a case without moving it
            return
        if old is not None:
            self._order.remove(old)
        self._order.add(key)
        self._place_of[case.case_id] = key

    def points_total(self, institution: str) -> float:
        """The institution's points (:meth:`points`), remembered until one of its cases changes or event time
        moves on by an hour (points fade by 0.02 % an hour): the queue shows them on every row."""
        cached = self._points.get(institution)
        if cached is None or institution in self._points_dirty or self.now_t - cached[0] > 3600.0:
            cached = self._points[institution] = (self.now_t, self.points(institution)[0])
            self._points_dirty.discard(institution)
        return cached[1]

    def points(self, institution: str) -> tuple[float, list[tuple[Any, float]]]:
        """记分: the institution's points now (event time of the newest alert) and each case's share, largest first."""
        shares = [(case, case_points(case, self.now_t)) for case in map(self.book.cases.get, self.cases_of(institution))]
        shares.sort(key=lambda x: -x[1])
        return sum(p for _, p in shares), shares

    def _queue_key(self, case: Any) -> tuple[Any, ...]:
        """A case's place: open before closed; then, once the priority has learned from both kinds of verdict,
        the chance an analyst confirms it; then its institution's grade, its strongest alert, its age."""
        learned = -round(self.priority_of(case), 3) if self.priority.ready and case.status != "closed" else 0.0
        return (case.status == "closed", learned, GRADE_RANK.get(self.grade_of(case), len(GRADES)),
                -case.strongest_score, case.first_seen, case.case_id)

    def priority_of(self, case: Any) -> float:
        """The learned chance that an analyst confirms the case (0.5 before any verdict)."""
        return self.priority.score_one(case_features(case, self.alerts.get(case.strongest or ""), self.grade_of(case)))

    def learn_verdict(self, case: Any) -> None:
        """A case closed with a verdict teaches the priority; the open cases are placed anew."""
        if case.verdict is None:
            return
        self.priority.learn_one(case_features(case, self.alerts.get(case.strongest or ""), self.grade_of(case)),
                                case.verdict in CONFIRMING)
        if self.priority.ready:  # every open case may move: place them all at once
            self._place_of = {cid: self._queue_key(c) for cid, c in self.book.cases.items()}
            self._order = SortedList(self._place_of.values())
            self._points_dirty.update(c.institution_id for c in self.book.cases.values())

    def cases_of(self, institution: str) -> set[str]:
        """The ids of the cases of an institution (its own, and those of its prescribers, patients, devices)."""
        return self._cases_of.get(institution, set())

    def queue(self, f: dict[str, str], limit: int = 500) -> list[tuple[Any, str, str]]:
        """The first ``limit`` cases in queue order that pass the filters, as (case, grade, grid). Filters: stream,
        status, family, grade, grid, ``assignee`` (a user's cases: "my cases") and ``overdue`` (past the due date
        now, wall-clock)."""
        rows = []
        cases = self.book.cases
        now = _now() if f.get("overdue") else ""
        for key in self._order:
            c = cases[key[-1]]
            if ((f.get("stream") and c.stream != f["stream"]) or (f.get("status") and c.status != f["status"])
                    or (f.get("family") and c.family != f["family"])
                    or (f.get("assignee") and c.assignee != f["assignee"]) or (now and not c.overdue(now))):
                continue
            grade, grid = self.grade_of(c), self.grid_of(c)
            if (f.get("grade") and grade != f["grade"]) or (f.get("grid") and grid != f["grid"]):
                continue
            rows.append((c, grade, grid))
            if len(rows) >= limit:
                break
        return rows

    def add_score(self, record: dict[str, Any]) -> None:
        """One record of zhijian.institution-scores (the latest day wins; a day published again replaces it)."""
        inst, day = record["institution_id"], record["day"]
        days = self.history.setdefault(inst, {})
        days[day] = (float(record["score"]), record["grade"])
        if len(days) > HISTORY_DAYS:
            del days[min(days)]
        if day >= self.scores.get(inst, {}).get("day", ""):
            before = self.scores.get(inst, {}).get("grade")
            self.scores[inst] = record
            if record["grade"] != before:  # its cases move in the queue
                for case_id in self.cases_of(inst):
                    self._place(self.book.cases[case_id])

    def add_watch(self, key: bytes | None, value: bytes | None) -> None:
        """One record of zhijian.watchlist: an entry set or replaced, or (a tombstone) removed."""
        if key is None:
            return
        k = key.decode("utf-8", "replace")
        if value is None:
            self.watchlist.pop(k, None)
        else:
            self.watchlist[k] = orjson.loads(value)

    def watch_entry(self, form: Any, user: str) -> dict[str, Any]:
        """A watch-list entry from the form, checked against its contract (raises InvalidRecord)."""
        entry: dict[str, Any] = {"schema_version": 1, "entity_kind": str(form.get("entity_kind", "")),
                                 "entity_id": str(form.get("entity_id", "")).strip(),
                                 "list": str(form.get("list", "")), "set_by": user,
                                 "event_time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for field in ("until", "basis", "name"):
            if str(form.get(field, "")).strip():
                entry[field] = str(form.get(field)).strip()
        if (entry["entity_kind"] in ("drug", "consumable")) != (entry["list"] == "key_monitored"):
            raise InvalidRecord("invalid_value", "a drug or a consumable goes on the key_monitored list, and only they do")
        if str(form.get("factor", "")).strip():
            try:
                entry["factor"] = float(str(form.get("factor")))
            except ValueError:
                raise InvalidRecord("wrong_type", "factor must be a number between 0 and 1") from None
        event = dict(entry)
        validate("watchlist", event)
        return entry

    def grade_of(self, case: Any) -> str:
        record = self.scores.get(case.institution_id) or self.scores.get(case.entity_id)
        return record["grade"] if record else ""

    def grid_of(self, case: Any) -> str:
        return self.grids.get(case.region, case.region or "unassigned")

    def apply_pending(self) -> None:
        waiting = []
        for e in self.pending:
            case = self.book.cases.get(e["case_id"])
            if case is None:
                waiting.append(e)
                continue
            try:
                if e["kind"] == "assign":
                    case.assign(e["assignee"], user=e["user"], at=e["at"], due=e.get("due"), comment=e["comment"])
                elif e["kind"] == "comment":
                    case.note(e["comment"] or "", user=e["user"], at=e["at"])
                else:
                    case.change(e["status"], user=e["user"], at=e["at"], comment=e["comment"], verdict=e["verdict"])
            except CaseError as err:  # already applied, or the store holds what this version refuses
                log.warning("case event for %s not replayed: %s", e["case_id"], err)
                continue
            self._place(case)
            if e["status"] == "closed":
                self.learn_verdict(case)
        self.pending = waiting
        self.flush_numbers()

    def may_change(self, role: str, case: Any) -> bool:
        return self.may_change_stream(role, case.stream)

    @staticmethod
    def may_change_stream(role: str, stream: str) -> bool:
        streams = MAY_CHANGE.get(role, set())
        return streams is None or stream in streams

    def _changeable(self, case_id: str, role: str) -> Any:
        case = self.book.cases.get(case_id)
        if case is None:
            raise KeyError(case_id)
        if not self.may_change(role, case):
            raise PermissionError(f"the {role} role may not change {case.stream} cases")
        return case

    def change(self, case_id: str, user: str, role: str, status: str, verdict: str | None,
               comment: str | None) -> dict[str, Any]:
        case = self._changeable(case_id, role)
        event = case.change(status, user=user, at=_now(), comment=comment or None, verdict=verdict or None).to_dict()
        self._place(case)
        if status == "closed":
            self.learn_verdict(case)
        self.store.add_event(event)
        return event

    def assign(self, case_id: str, user: str, role: str, assignee: str, comment: str | None = None) -> dict[str, Any]:
        """指派: a supervisor gives a case to any user whose role may change it; anyone else may only take a case
        they may change themselves. The due date follows the institution's grade (``cases.DUE_DAYS``)."""
        case = self._changeable(case_id, role)
        if role != "supervisor" and assignee != user:
            raise PermissionError(f"the {role} role may take a case, not give it to someone else")
        their_role = self.store.role_of(assignee)
        if their_role is None:
            raise CaseError(f"there is no user {assignee[:64]}")
        if not self.may_change_stream(their_role, case.stream):
            raise CaseError(f"{assignee[:64]} ({their_role}) may not work {case.stream} cases")
        event = case.assign(assignee, user=user, at=_now(), grade=self.grade_of(case), comment=comment or None).to_dict()
        self.store.add_event(event)
        return event

    def comment(self, case_id: str, user: str, text: str) -> dict[str, Any]:
        """A comment on a case's thread (anyone signed in)."""
        case = self.book.cases.get(case_id)
        if case is None:
            raise KeyError(case_id)
        event = case.note(text, user=user, at=_now()).to_dict()
        self.store.add_event(event)
        return event

    def bulk_change(self, case_ids: list[str], user: str, role: str, status: str,
                    comment: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        """One change applied to many cases (bulk acknowledgement): the events of those it applied to, and one
        line for each it did not (unknown, not allowed, or a transition the lifecycle refuses)."""
        events, refused = [], []
        for case_id in dict.fromkeys(case_ids):
            try:
                events.append(self.change(case_id, user, role, status, None, comment))
            except KeyError:
                refused.append(f"{case_id[:64]}: no such case")
            except (PermissionError, CaseError) as e:
                case = self.book.cases.get(case_id)
                refused.append(f"{case.number if case else case_id[:64]}: {e}")
        return events, refused

    def users(self) -> list[tuple[str, str]]:
        return self.store.user_names()

    # -- sessions
    def session_cookie(self, user: str) -> str:
        payload = orjson.dumps({"u": user, "c": base64.urlsafe_b64encode(os.urandom(18)).decode(),
                                "x": int(time.time()) + SESSION_S})
        body = base64.urlsafe_b64encode(payload).decode()
        return body + "." + hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def session(self, cookie: str | None) -> dict[str, Any] | None:
        """{user, role, csrf} of a valid, unexpired cookie of a user who still exists, else None."""
        if not cookie or "." not in cookie:
            return None
        body, sig = cookie.rsplit(".", 1)
        if not hmac.compare_digest(sig, hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        role = self.store.role_of(data.get("u", ""))
        if role is None or data.get("x", 0) < time.time():
            return None
        return {"user": data["u"], "role": role, "csrf": data["c"]}
