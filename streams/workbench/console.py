"""`zhijian console`: the workbench 工作台 — cases built from the alert topic, triaged in a browser.

Server-rendered pages (aiohttp + Jinja2 with autoescaping, no build chain). The console follows
``zhijian.alerts`` from its beginning (every alert, no consumer group) and files each alert into its
case (:mod:`streams.workbench.cases`); the case events kept in its store (:mod:`streams.workbench.store`) are
replayed onto the cases, and every new change is written there and to ``zhijian.case-events``.

It also follows ``zhijian.institution-scores`` (:mod:`streams.workbench.risk.scorer`): each institution's risk grade
红/橙/黄/蓝 and its history, shown beside its cases and on the institution's page. Each case goes
to the grid 网格 of its region (a table ``region → grid`` given with ``--grids``; a region not in it
is its own grid), and the queue filters by grid and by grade.

Users sign in (scrypt-hashed passwords, a signed session cookie); every form carries the session's
CSRF token. Roles: an ``analyst`` changes cases of claims, prescriptions and medical waste, an
``operator`` cold-chain cases, a ``supervisor`` any; all see every case. Patients appear only as
their pseudonyms, as in the alerts.
"""
from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import orjson
from aiohttp import web
from sortedcontainers import SortedList

from streams.workbench.store import Store
from connectors.kafka.topics import partitions_of
from models.contracts.records import InvalidRecord, validate
from streams.workbench.cases import STATUSES, TRANSITIONS, VERDICTS, CaseBook, CaseError, case_points, points_grade
from streams.workbench.priority import CONFIRMING, CasePriority, case_features

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

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


class Console:
    """The cases and who may do what to them (no I/O: the web handlers and the followers call it)."""

    def __init__(self, store: Store, grids: dict[str, str] | None = None) -> None:
        self.store = store
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
        self.priority = CasePriority()  # learned from the verdicts (streams.workbench.priority); orders the queue once ready
        self._points: dict[str, tuple[float, float]] = {}  # institution → (now_t, its points then)
        self._points_dirty: set[str] = set()  # institutions a case of which changed since
        self.grid_names: set[str] = set()

    # -- cases
    def add_alert(self, alert: dict[str, Any]) -> None:
        self.alerts[alert["alert_id"]] = alert
        case = self.book.add(alert)
        if case.last_seen > self.now:
            self.now, self.now_t = case.last_seen, datetime.fromisoformat(case.last_seen).timestamp()
        if case.case_id not in self._place_of:
            for inst in {case.institution_id, case.entity_id}:
                self._cases_of.setdefault(inst, set()).add(case.case_id)
            self.families.add(case.family)
            self.grid_names.add(self.grid_of(case))
        self._place(case)

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
        """The first ``limit`` cases in queue order that pass the filters, as (case, grade, grid)."""
        rows = []
        cases = self.book.cases
        for key in self._order:
            c = cases[key[-1]]
            if ((f.get("stream") and c.stream != f["stream"]) or (f.get("status") and c.status != f["status"])
                    or (f.get("family") and c.family != f["family"])):
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
        for field in ("until", "basis"):
            if str(form.get(field, "")).strip():
                entry[field] = str(form.get(field)).strip()
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
                case.change(e["status"], user=e["user"], at=e["at"], comment=e["comment"], verdict=e["verdict"])
            except CaseError as err:  # already applied, or the store holds what this version refuses
                log.warning("case event for %s not replayed: %s", e["case_id"], err)
                continue
            self._place(case)
            if e["status"] == "closed":
                self.learn_verdict(case)
        self.pending = waiting

    def may_change(self, role: str, case: Any) -> bool:
        return self.may_change_stream(role, case.stream)

    @staticmethod
    def may_change_stream(role: str, stream: str) -> bool:
        streams = MAY_CHANGE.get(role, set())
        return streams is None or stream in streams

    def change(self, case_id: str, user: str, role: str, status: str, verdict: str | None,
               comment: str | None) -> dict[str, Any]:
        case = self.book.cases.get(case_id)
        if case is None:
            raise KeyError(case_id)
        if not self.may_change(role, case):
            raise PermissionError(f"the {role} role may not change {case.stream} cases")
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        event = case.change(status, user=user, at=at, comment=comment or None, verdict=verdict or None).to_dict()
        self._place(case)
        if status == "closed":
            self.learn_verdict(case)
        self.store.add_event(event)
        return event

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


def _sparkline(values: list[float], width: int = 300, height: int = 40) -> str:
    """SVG polyline points of a score history (the page draws it; no script, no chart library)."""
    if len(values) < 2:
        return ""
    top = max(max(values), 1e-9)
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - v / top * (height - 2) - 1:.1f}" for i, v in enumerate(values))


def _page(name: str, status: int = 200, **values: Any) -> web.Response:
    return web.Response(text=_templates.get_template(name).render(**values), status=status, content_type="text/html")


def make_app(console: Console, send_event: Any = None, send_watch: Any = None) -> web.Application:
    """The web application; ``send_event(dict)`` (a coroutine) writes a case event to Kafka, ``send_watch(key,
    entry or None)`` a watch-list entry or its removal."""
    routes = web.RouteTableDef()

    def who(request: web.Request) -> dict[str, Any] | None:
        return console.session(request.cookies.get(SESSION_COOKIE))

    def error(request: web.Request, status: int, title: str, message: str, s: dict | None) -> web.Response:
        return _page("error.html", status, title=title, message=message, user=s and s["user"], role=s and s["role"],
                     csrf=s and s["csrf"])

    @routes.get("/login")
    async def login_form(request: web.Request) -> web.Response:
        return _page("login.html", user=None, error=None)

    @routes.post("/login")
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        name, password = str(form.get("user", "")), str(form.get("password", ""))
        if not console.store.check_password(name, password):
            return _page("login.html", 401, user=None, error="unknown user or wrong password")
        response = web.HTTPSeeOther("/")
        response.set_cookie(SESSION_COOKIE, console.session_cookie(name), httponly=True, samesite="Strict",
                            max_age=SESSION_S)
        return response

    @routes.post("/logout")
    async def logout(request: web.Request) -> web.Response:
        s = who(request)
        form = await request.post()
        if s is None or not hmac.compare_digest(str(form.get("csrf", "")), s["csrf"]):
            return error(request, 403, "Refused", "the form did not come from this session (CSRF token)", s)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE)
        return response

    @routes.get("/")
    async def queue(request: web.Request) -> web.Response:
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        f = {k: request.query.get(k, "") for k in ("stream", "status", "family", "grade", "grid")}
        rows = console.queue(f)
        points = {inst: console.points_total(inst) for inst in {c.institution_id for c, _, _ in rows if c.institution_id}}
        learned = ({c.case_id: console.priority_of(c) for c, _, _ in rows if c.status != "closed"}
                   if console.priority.ready else {})
        return _page("queue.html", rows=rows, points=points, learned=learned,
                     verdicts=sum(console.priority.seen.values()), total=len(console.book.cases), f=f, streams=STREAMS,
                     statuses=STATUSES, families=sorted(console.families), grades=GRADES,
                     grids=sorted(console.grid_names), **s)

    @routes.get("/institutions/{institution_id}")
    async def institution_page(request: web.Request) -> web.Response:
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        inst = request.match_info["institution_id"]
        points, shares = console.points(inst)
        cases = [c for c, _ in shares]
        record = console.scores.get(inst)
        if record is None and not cases:
            return error(request, 404, "No such institution", f"no score and no case for institution {inst[:64]}", s)
        history = sorted(console.history.get(inst, {}).items())
        share = {c.case_id: p for c, p in shares}
        cases.sort(key=lambda c: (c.status == "closed", -share[c.case_id], c.last_seen))
        z = sorted((record or {}).get("z", {}).items(), key=lambda kv: -kv[1])
        return _page("institution.html", inst=inst, r=record, z=z, features=(record or {}).get("features", {}),
                     history=history, cases=cases, spark=_sparkline([v[0] for _, v in history]), points=points,
                     points_grade=points_grade(points), share=share, as_of=console.now, **s)

    @routes.get("/coldchain")
    async def coldchain(request: web.Request) -> web.Response:
        """The cold-chain board 冷链看板: devices with an open excursion or a silent logger, to acknowledge."""
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        excursions, silent = [], []
        for c in console.book.cases.values():
            if c.stream != "telemetry" or c.status == "closed":
                continue
            for aid in c.alert_ids:
                a = console.alerts[aid]
                if a.get("status") != "open":
                    continue
                row = (c, a, console.grid_of(c))
                (silent if a["detector"] == "coldchain.sensor_silent" else excursions).append(row)
        excursions.sort(key=lambda r: r[1]["event_time"])
        silent.sort(key=lambda r: r[1]["event_time"])
        return _page("coldchain.html", excursions=excursions, silent=silent,
                     can_change=console.may_change_stream(s["role"], "telemetry"), **s)

    @routes.get("/watchlist")
    async def watchlist_page(request: web.Request) -> web.Response:
        """Watch lists 重点监管名单 and excluded providers 黑名单: what every worker applies; supervisors edit."""
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        return _watchlist(s)

    def _watchlist(s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
        entries = sorted(console.watchlist.items(), key=lambda kv: (kv[1].get("list", ""), kv[0]))
        return _page("watchlist.html", status, entries=entries, error=message,
                     can_edit=s["role"] == "supervisor", **s)

    @routes.post("/watchlist")
    async def watchlist_change(request: web.Request) -> web.Response:
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), s["csrf"]):
            return error(request, 403, "Refused", "the form did not come from this session (CSRF token)", s)
        if s["role"] != "supervisor":
            return error(request, 403, "Not allowed", f"the {s['role']} role may not edit the watch lists", s)
        if send_watch is None:
            return error(request, 503, "Not connected", "this console cannot write to the watch-list topic", s)
        remove = str(form.get("remove", ""))
        if remove:
            if remove not in console.watchlist:
                return _watchlist(s, 404, f"no entry {remove[:80]} on the watch lists")
            await send_watch(remove, None)
            console.add_watch(remove.encode(), None)
        else:
            try:
                entry = console.watch_entry(form, s["user"])
            except InvalidRecord as e:
                return _watchlist(s, 400, e.detail)
            key = f"{entry['entity_kind']}:{entry['entity_id']}"
            await send_watch(key, entry)
            console.add_watch(key.encode(), orjson.dumps(entry))
        raise web.HTTPSeeOther("/watchlist")

    @routes.get("/cases/{case_id}")
    async def case_page(request: web.Request) -> web.Response:
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        return _case(request, s)

    def _case(request: web.Request, s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
        case = console.book.cases.get(request.match_info["case_id"])
        if case is None:
            return error(request, 404, "No such case", f"there is no case {request.match_info['case_id'][:64]}", s)
        alerts = []
        for aid in case.alert_ids:
            a = dict(console.alerts[aid])
            a["numbers_json"] = orjson.dumps(a.get("numbers", {})).decode()
            alerts.append(a)
        return _page("case.html", status, c=case, alerts=alerts, history=[vars(e) for e in case.history],
                     error=message, can_change=console.may_change(s["role"], case),
                     next_statuses=TRANSITIONS[case.status], verdicts=VERDICTS, **s)

    @routes.post("/cases/{case_id}")
    async def change(request: web.Request) -> web.Response:
        s = who(request)
        if s is None:
            raise web.HTTPSeeOther("/login")
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), s["csrf"]):
            return error(request, 403, "Refused", "the form did not come from this session (CSRF token)", s)
        try:
            event = console.change(request.match_info["case_id"], s["user"], s["role"], str(form.get("status", "")),
                                   str(form.get("verdict", "")) or None, str(form.get("comment", ""))[:2000])
        except KeyError:
            return error(request, 404, "No such case", f"there is no case {request.match_info['case_id'][:64]}", s)
        except PermissionError as e:
            return error(request, 403, "Not allowed", str(e), s)
        except CaseError as e:
            return _case(request, s, 400, str(e))
        if send_event is not None:
            await send_event(event)
        if form.get("back") == "/coldchain":  # acknowledged from the board: back to it (no other target)
            raise web.HTTPSeeOther("/coldchain")
        raise web.HTTPSeeOther(f"/cases/{event['case_id']}")

    app = web.Application(client_max_size=64 * 1024)
    app.add_routes(routes)
    return app


async def follow(conn: Any, topic: str, apply: Any, what: str) -> None:
    """Read a topic from the beginning and keep following it, handing each record to ``apply(record)`` (a record
    it cannot take is logged and skipped; a missing topic is logged: the console goes on without it)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from connectors.errors import ZhijianError

    consumer = AIOKafkaConsumer(**conn.aiokafka(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        except ZhijianError as e:
            log.warning("no %s: %s", what, e)
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    try:
                        apply(r)
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                        log.warning("%s record %s[%d]@%d skipped: %s", what, r.topic, r.partition, r.offset, e)
    finally:
        await consumer.stop()


async def follow_scores(conn: Any, topic: str, console: Console) -> None:
    """The institution scores: each institution's grade and its history."""
    await follow(conn, topic, lambda r: console.add_score(orjson.loads(r.value)), "institution grades")


async def follow_watchlist(conn: Any, topic: str, console: Console) -> None:
    """The watch lists, as every worker applies them."""
    await follow(conn, topic, lambda r: console.add_watch(r.key, r.value), "watch lists")


async def follow_alerts(conn: Any, topic: str, console: Console, ready: asyncio.Event) -> None:
    """Read the alert topic from its beginning and keep following it."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**conn.aiokafka(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    try:
                        console.add_alert(orjson.loads(r.value))
                    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                        log.warning("alert %s[%d]@%d skipped: %s", r.topic, r.partition, r.offset, e)
            console.apply_pending()
            if not ready.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                # caught up: what was built so far lives on — keep the collector from walking it again and again
                # (with 100,000 cases a full collection paused a page for over a second)
                gc.collect()
                gc.freeze()
                ready.set()
    finally:
        await consumer.stop()


async def serve(conn: Any, alerts_topic: str, events_topic: str, store: Store, host: str, port: int,
                scores_topic: str | None = None, grids: dict[str, str] | None = None,
                watch_topic: str | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    console = Console(store, grids)
    producer = AIOKafkaProducer(**conn.aiokafka())
    await producer.start()

    async def send_event(event: dict[str, Any]) -> None:
        await producer.send_and_wait(events_topic, key=event["case_id"].encode(), value=orjson.dumps(event))

    async def send_watch(key: str, entry: dict[str, Any] | None) -> None:
        await producer.send_and_wait(watch_topic, key=key.encode(), value=None if entry is None else orjson.dumps(entry))

    ready = asyncio.Event()
    follower = asyncio.create_task(follow_alerts(conn, alerts_topic, console, ready))
    scores = asyncio.create_task(follow_scores(conn, scores_topic, console)) if scores_topic else None
    watching = asyncio.create_task(follow_watchlist(conn, watch_topic, console)) if watch_topic else None
    runner = web.AppRunner(make_app(console, send_event, send_watch if watch_topic else None))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"zhijian console: http://{host}:{port}/ (alerts from {alerts_topic}, case events to {events_topic})",
          flush=True)
    try:
        await follower
    finally:
        for task in (scores, watching):
            if task is not None:
                task.cancel()
        await runner.cleanup()
        await producer.stop()
