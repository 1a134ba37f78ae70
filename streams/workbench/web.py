"""`zhijian console`: the workbench's web application — server-rendered pages (aiohttp + Jinja2 with
autoescaping, no build chain) over a :class:`~streams.workbench.console.Console`, and the topics it follows.

Pages: the queue ``/``, a case ``/cases/{id}`` (and its form), an institution ``/institutions/{id}``, the
cold-chain board ``/coldchain``, the watch lists ``/watchlist``, sign-in and sign-out. Every handler finds the
console and the senders in the application (``request.app[CONSOLE]``); every form carries the session's CSRF
token. :func:`serve` follows ``zhijian.alerts``, ``zhijian.institution-scores`` and ``zhijian.watchlist`` with
the topic follower and writes case events and watch-list entries.
"""
from __future__ import annotations

import asyncio
import gc
import hmac
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import jinja2
from markupsafe import Markup
import orjson
from aiohttp import web

from connectors.kafka.connection import KafkaConnection
from connectors.kafka.follower import TopicFollower, follow_forever
from models.contracts.records import InvalidRecord
from streams.workbench.cases import STATUSES, TRANSITIONS, VERDICTS, CaseError, points_grade
from streams.workbench.console import GRADES, SESSION_S, STREAMS, Console
from streams.workbench.store import Store

log = logging.getLogger(__name__)

SESSION_COOKIE = "zj_session"
CONSOLE = web.AppKey("console", Console)
#: writes a case event to zhijian.case-events (None: not connected)
SEND_EVENT = web.AppKey("send_event", object)
#: writes a watch-list entry, or its removal (None), to zhijian.watchlist (None: not connected)
SEND_WATCH = web.AppKey("send_watch", object)

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)

#: The region's time zone: every time a page shows is in it, UTC on hover (``zhijian console --timezone``).
REGION_TZ = "Asia/Shanghai"
_zone: list[Any] = []


def set_timezone(name: str) -> None:
    """The zone the pages show times in (an IANA name); one clear error when the machine does not know it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as Asia/Shanghai") from None
    _zone[:] = [zone]


def local_time(value: Any, seconds: bool = False) -> Markup:
    """An ISO time as the region reads it — ``2026-11-05 04:09`` in its zone — with the UTC time on hover; a day
    (``2026-11-05``) or anything else is shown as it is.

    >>> set_timezone("Asia/Shanghai")
    >>> str(local_time("2026-11-04T20:09:55+00:00"))
    '<time datetime="2026-11-04T20:09:55+00:00" title="2026-11-04 20:09:55 UTC">2026-11-05 04:09</time>'
    >>> str(local_time("2026-11-05")), str(local_time(None))
    ('2026-11-05', '')
    """
    from datetime import datetime, timezone

    if not value:
        return Markup("")
    text = str(value)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return Markup.escape(text)
    if t.tzinfo is None or len(text) <= 10:
        return Markup.escape(text)
    if not _zone:
        set_timezone(REGION_TZ)
    shown = t.astimezone(_zone[0]).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    utc = t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return Markup(f'<time datetime="{Markup.escape(text)}" title="{utc} UTC">{shown}</time>')


_templates.filters["local"] = local_time
routes = web.RouteTableDef()


def make_app(console: Console, send_event: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
             send_watch: Callable[[str, dict[str, Any] | None], Awaitable[None]] | None = None) -> web.Application:
    """The web application over ``console``; ``send_event(dict)`` (a coroutine) writes a case event to Kafka,
    ``send_watch(key, entry or None)`` a watch-list entry or its removal."""
    app = web.Application(client_max_size=64 * 1024)
    app[CONSOLE] = console
    app[SEND_EVENT] = send_event
    app[SEND_WATCH] = send_watch
    app.add_routes(routes)
    return app


# -- helpers of every page

def _page(name: str, status: int = 200, **values: Any) -> web.Response:
    return web.Response(text=_templates.get_template(name).render(**values), status=status, content_type="text/html")


def _who(request: web.Request) -> dict[str, Any]:
    """The signed-in session ({user, role, csrf}); a visitor without one is sent to the sign-in page."""
    s = request.app[CONSOLE].session(request.cookies.get(SESSION_COOKIE))
    if s is None:
        raise web.HTTPSeeOther("/login")
    return s


def _error(status: int, title: str, message: str, s: dict[str, Any] | None) -> web.Response:
    return _page("error.html", status, title=title, message=message, user=s and s["user"], role=s and s["role"],
                 csrf=s and s["csrf"])


def _forged(form: Any, s: dict[str, Any] | None) -> web.Response | None:
    """The refusal of a form that did not come from this session (its CSRF token), or None."""
    if s is None or not hmac.compare_digest(str(form.get("csrf", "")), s["csrf"]):
        return _error(403, "Refused", "the form did not come from this session (CSRF token)", s)
    return None


def _sparkline(values: list[float], width: int = 300, height: int = 40) -> str:
    """SVG polyline points of a score history (the page draws it; no script, no chart library)."""
    if len(values) < 2:
        return ""
    top = max(max(values), 1e-9)
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - v / top * (height - 2) - 1:.1f}" for i, v in enumerate(values))


def trace_svg(trace: dict[str, Any] | None, width: int = 288, height: int = 64) -> str:
    """A device's last day hour by hour (an abnormal-dynamics alert's ``trace``) as inline SVG, no script: the
    band is each hour's learned normal ± 2 sd, the dashed line the normal, the solid line what was read.

    >>> svg = trace_svg({"start_t": 0, "observed": [5.0, 5.1, 7.0], "normal": [5.0, 5.0, 5.0], "sd": [0.1, 0.1, 0.1]})
    >>> svg.count("<polyline"), svg.count("<polygon"), "7.0" in svg
    (2, 1, True)
    >>> trace_svg(None), trace_svg({"start_t": None, "observed": [], "normal": [], "sd": []})
    ('', '')
    """
    if not trace or not trace.get("observed"):
        return ""
    observed, normal, sd = trace["observed"], trace["normal"], trace["sd"]
    lows = [n - 2 * d for n, d in zip(normal, sd) if n is not None and d is not None]
    highs = [n + 2 * d for n, d in zip(normal, sd) if n is not None and d is not None]
    values = [v for v in observed if v is not None] + lows + highs
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.2)
    step = width / max(len(observed) - 1, 1)

    def y(v: float) -> float:
        return height - 4 - (v - lo) / span * (height - 8)

    def line(vals: list[float | None]) -> str:
        return " ".join(f"{i * step:.1f},{y(v):.1f}" for i, v in enumerate(vals) if v is not None)

    band = [(i, n, d) for i, (n, d) in enumerate(zip(normal, sd)) if n is not None and d is not None]
    polygon = " ".join([f"{i * step:.1f},{y(n + 2 * d):.1f}" for i, n, d in band]
                       + [f"{i * step:.1f},{y(n - 2 * d):.1f}" for i, n, d in reversed(band)])
    last = next((v for v in reversed(observed) if v is not None), None)
    label = "" if last is None else f'<text x="{width - 2}" y="10" text-anchor="end" font-size="10">{last:.1f} °C</text>'
    return (f'<svg class="trace" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="last 24 hours against each hour\'s normal">'
            f'<title>hourly mean read (line) against each hour\'s learned normal ± 2 sd (band, dashed); '
            f'{lo:.1f}–{hi:.1f} °C</title>'
            f'<polygon points="{polygon}" fill="#dde8f5" stroke="none"/>'
            f'<polyline points="{line(normal)}" fill="none" stroke="#6b8fc2" stroke-dasharray="3,2"/>'
            f'<polyline points="{line(observed)}" fill="none" stroke="#c0392b" stroke-width="1.5"/>{label}</svg>')


# -- signing in and out

@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return _page("login.html", user=None, error=None)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
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
    s = request.app[CONSOLE].session(request.cookies.get(SESSION_COOKIE))
    refused = _forged(await request.post(), s)
    if refused is not None:
        return refused
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE)
    return response


# -- the queue, an institution, the cold-chain board

@routes.get("/")
async def queue(request: web.Request) -> web.Response:
    s = _who(request)
    console = request.app[CONSOLE]
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
    s = _who(request)
    console = request.app[CONSOLE]
    inst = request.match_info["institution_id"]
    points, shares = console.points(inst)
    cases = [c for c, _ in shares]
    record = console.scores.get(inst)
    if record is None and not cases:
        return _error(404, "No such institution", f"no score and no case for institution {inst[:64]}", s)
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
    s = _who(request)
    console = request.app[CONSOLE]
    excursions, silent = [], []
    for c in console.book.cases.values():
        if c.stream != "telemetry" or c.status == "closed":
            continue
        for aid in c.alert_ids:
            a = console.alerts[aid]
            if a.get("status") != "open":
                continue
            row = (c, a, console.grid_of(c), Markup(trace_svg((a.get("numbers") or {}).get("trace"))))
            (silent if a["detector"] == "coldchain.sensor_silent" else excursions).append(row)
    excursions.sort(key=lambda r: r[1]["event_time"])
    silent.sort(key=lambda r: r[1]["event_time"])
    return _page("coldchain.html", excursions=excursions, silent=silent,
                 can_change=console.may_change_stream(s["role"], "telemetry"), **s)


# -- watch lists

@routes.get("/watchlist")
async def watchlist_page(request: web.Request) -> web.Response:
    """Watch lists 重点监管名单 and excluded providers 黑名单: what every worker applies; supervisors edit."""
    return _watchlist(request.app[CONSOLE], _who(request))


def _watchlist(console: Console, s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
    entries = sorted(console.watchlist.items(), key=lambda kv: (kv[1].get("list", ""), kv[0]))
    return _page("watchlist.html", status, entries=entries, error=message, can_edit=s["role"] == "supervisor", **s)


@routes.post("/watchlist")
async def watchlist_change(request: web.Request) -> web.Response:
    s = _who(request)
    console, send_watch = request.app[CONSOLE], request.app[SEND_WATCH]
    form = await request.post()
    refused = _forged(form, s)
    if refused is not None:
        return refused
    if s["role"] != "supervisor":
        return _error(403, "Not allowed", f"the {s['role']} role may not edit the watch lists", s)
    if send_watch is None:
        return _error(503, "Not connected", "this console cannot write to the watch-list topic", s)
    remove = str(form.get("remove", ""))
    if remove:
        if remove not in console.watchlist:
            return _watchlist(console, s, 404, f"no entry {remove[:80]} on the watch lists")
        await send_watch(remove, None)
        console.add_watch(remove.encode(), None)
    else:
        try:
            entry = console.watch_entry(form, s["user"])
        except InvalidRecord as e:
            return _watchlist(console, s, 400, e.detail)
        key = f"{entry['entity_kind']}:{entry['entity_id']}"
        await send_watch(key, entry)
        console.add_watch(key.encode(), orjson.dumps(entry))
    raise web.HTTPSeeOther("/watchlist")


# -- a case

@routes.get("/cases/{case_id}")
async def case_page(request: web.Request) -> web.Response:
    return _case(request, _who(request))


def _case(request: web.Request, s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
    console = request.app[CONSOLE]
    case = console.book.cases.get(request.match_info["case_id"])
    if case is None:
        return _error(404, "No such case", f"there is no case {request.match_info['case_id'][:64]}", s)
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
    s = _who(request)
    console, send_event = request.app[CONSOLE], request.app[SEND_EVENT]
    form = await request.post()
    refused = _forged(form, s)
    if refused is not None:
        return refused
    try:
        event = console.change(request.match_info["case_id"], s["user"], s["role"], str(form.get("status", "")),
                               str(form.get("verdict", "")) or None, str(form.get("comment", ""))[:2000])
    except KeyError:
        return _error(404, "No such case", f"there is no case {request.match_info['case_id'][:64]}", s)
    except PermissionError as e:
        return _error(403, "Not allowed", str(e), s)
    except CaseError as e:
        return _case(request, s, 400, str(e))
    if send_event is not None:
        await send_event(event)
    if form.get("back") == "/coldchain":  # acknowledged from the board: back to it (no other target)
        raise web.HTTPSeeOther("/coldchain")
    raise web.HTTPSeeOther(f"/cases/{event['case_id']}")


# -- the topics it follows, and the server

def _skipping(what: str, apply: Callable[[Any], None]) -> Callable[[Any], None]:
    """``apply`` that logs and skips a record it cannot take."""

    def take(record: Any) -> None:
        try:
            apply(record)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            log.warning("%s record %s[%d]@%d skipped: %s", what, record.topic, record.partition, record.offset, e)

    return take


async def follow_alerts(conn: KafkaConnection, topic: str, console: Console, ready: asyncio.Event) -> None:
    """Read the alert topic from its beginning and keep following it; ``ready`` once caught up."""

    def caught_up() -> None:
        # what was built so far lives on — keep the collector from walking it again and again (with 100,000
        # cases a full collection paused a page for over a second)
        gc.collect()
        gc.freeze()
        ready.set()

    async with TopicFollower(conn, [topic]) as follower:
        await follower.follow(_skipping("alert", lambda r: console.add_alert(orjson.loads(r.value))), caught_up,
                              after_batch=console.apply_pending, timeout_ms=500)


async def serve(conn: KafkaConnection, alerts_topic: str, events_topic: str, store: Store, host: str, port: int,
                scores_topic: str | None = None, grids: dict[str, str] | None = None,
                watch_topic: str | None = None, verdicts_topic: str | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    from streams.workbench.risk.learned import POSITIVE
    from streams.workbench.risk.verdicts import record as verdict_record

    console = Console(store, grids)
    producer = AIOKafkaProducer(**conn.aiokafka())
    await producer.start()

    async def send_event(event: dict[str, Any]) -> None:
        await producer.send_and_wait(events_topic, key=event["case_id"].encode(), value=orjson.dumps(event))
        case = console.book.cases.get(event["case_id"])
        if verdicts_topic and event.get("verdict") in POSITIVE and case is not None and case.institution_id:
            # a case closed as fraud or violation is a finding on its institution: the learned risk score's label
            finding = verdict_record(case.institution_id, event["verdict"], event["at"][:10], "workbench",
                                     case_id=case.case_id, user=event.get("user"))
            await producer.send_and_wait(verdicts_topic, key=case.institution_id.encode(), value=orjson.dumps(finding))

    async def send_watch(key: str, entry: dict[str, Any] | None) -> None:
        await producer.send_and_wait(watch_topic, key=key.encode(), value=None if entry is None else orjson.dumps(entry))

    ready = asyncio.Event()
    follower = asyncio.create_task(follow_alerts(conn, alerts_topic, console, ready))
    side = []  # grades and watch lists: the console goes on without them when their topic is missing
    if scores_topic:
        side.append(asyncio.create_task(follow_forever(
            conn, [scores_topic], _skipping("institution grades", lambda r: console.add_score(orjson.loads(r.value))),
            "institution grades", log, missing_ok=True)))
    if watch_topic:
        side.append(asyncio.create_task(follow_forever(
            conn, [watch_topic], _skipping("watch lists", lambda r: console.add_watch(r.key, r.value)),
            "watch lists", log, missing_ok=True)))
    runner = web.AppRunner(make_app(console, send_event, send_watch if watch_topic else None))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"zhijian console: http://{host}:{port}/ (alerts from {alerts_topic}, case events to {events_topic})",
          flush=True)
    try:
        await follower
    finally:
        for task in side:
            task.cancel()
        await runner.cleanup()
        await producer.stop()
