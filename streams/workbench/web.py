"""`zhijian console`: the workbench's web application — server-rendered pages (aiohttp + Jinja2 with
autoescaping, no build chain) over a :class:`~streams.workbench.console.Console`, and the topics it follows.

Pages: the queue ``/`` (filters, "my cases", overdue, bulk acknowledgement), a case ``/cases/{id}`` (its alerts
summarised by rule and day and paged, its thread, its forms: change, assign 指派, comment) and its report
``/cases/{id}/report.xlsx`` (稽核报告), search ``/search``, an institution ``/institutions/{id}``, the cold-chain
board ``/coldchain``, the watch lists ``/watchlist``, sign-in and sign-out. Charts are drawn in the browser by
Apache ECharts, vendored in ``static/`` (nothing is loaded from the internet). Every page is in Chinese (zh_CN,
the default) or English (``/lang/en``): the templates' messages are English msgids translated by the gettext
catalogue ``locale/zh_CN/LC_MESSAGES/messages.po`` (Babel reads it at start). Every handler finds the console and
the senders in the application (``request.app[CONSOLE]``); every form carries the session's CSRF token. :func:`serve` follows ``zhijian.alerts``, ``zhijian.institution-scores`` and ``zhijian.watchlist`` with
the topic follower and writes case events and watch-list entries.
"""
from __future__ import annotations

import asyncio
import gc
import gettext
import hmac
import io
import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable

import jinja2
from markupsafe import Markup
import orjson
from aiohttp import web

from connectors.kafka.connection import KafkaConnection
from connectors.kafka.follower import TopicFollower, follow_forever
from models.contracts.records import InvalidRecord
from streams.workbench.cases import STATUSES, TRANSITIONS, VERDICTS, CaseError, money_of, points_grade
from streams.workbench.console import GRADES, SESSION_S, STREAMS, Console
from streams.workbench.reports import INDICATORS, month_workbook
from streams.workbench.store import Store

log = logging.getLogger(__name__)

SESSION_COOKIE = "zj_session"
CONSOLE = web.AppKey("console", Console)
#: writes a case event to zhijian.case-events (None: not connected)
SEND_EVENT = web.AppKey("send_event", object)
#: writes a watch-list entry, or its removal (None), to zhijian.watchlist (None: not connected)
SEND_WATCH = web.AppKey("send_watch", object)

HERE = Path(__file__).parent
LANG_COOKIE = "zj_lang"
#: the languages of the pages, the first the default
LANGUAGES = ("zh_CN", "en")
#: alerts listed per page of a case
PAGE_SIZE = 50


def N_(message: str) -> str:
    """Marks a message for the catalogue whose translation is looked up later (codes shown by their name)."""
    return message


#: the codes a page shows by name (statuses, verdicts, grades, streams, roles): msgids of the catalogue
CODE_NAMES = (N_("open"), N_("acknowledged"), N_("in_progress"), N_("closed"), N_("fraud"), N_("violation"),
              N_("false_positive"), N_("duplicate"), N_("justified"), N_("red"), N_("orange"), N_("yellow"),
              N_("blue"), N_("prescription"), N_("claim"), N_("waste"), N_("telemetry"), N_("analyst"),
              N_("operator"), N_("supervisor"), N_("watch"), N_("excluded"), N_("key_monitored"), N_("assign"),
              N_("status"), N_("comment"))


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of ``lang`` (read from its .po with Babel, compiled in memory); English is the msgids."""
    if lang == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with open(HERE / "locale" / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


@lru_cache(maxsize=None)
def _templates(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"])
    t = translations(lang)
    env.install_gettext_translations(t, newstyle=True)  # type: ignore[attr-defined]
    env.filters["local"] = local_time
    env.filters["t"] = t.gettext  # a code shown by its name: {{ c.status|t }}
    env.filters["fields"] = lambda numbers: number_fields(numbers, t.gettext)
    return env


def tr(lang: str, message: str, **values: Any) -> str:
    """A message of the Python side (a page title, an error line) in ``lang``."""
    text = translations(lang).gettext(message)
    return text % values if values else text

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


def local_day(value: str) -> str:
    """The region's calendar day of an ISO time.

    >>> set_timezone("Asia/Shanghai")
    >>> local_day("2026-11-04T20:09:55+00:00")
    '2026-11-05'
    """
    from datetime import datetime

    if not _zone:
        set_timezone(REGION_TZ)
    return datetime.fromisoformat(value).astimezone(_zone[0]).strftime("%Y-%m-%d")


def _shown(value: Any, gettext: Callable[[str], str]) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        items = ", ".join(_shown(v, gettext) for v in value[:12])
        return items + (f" … ({len(value)})" if len(value) > 12 else "")
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_shown(v, gettext)}" for k, v in list(value.items())[:12])
    return str(value)


def number_fields(numbers: dict[str, Any] | None, gettext: Callable[[str], str] = str) -> list[tuple[str, str]]:
    """An alert's numbers as labelled fields, for people: names in words, money and counts with separators,
    lists shortened; a ``trace`` is drawn as a chart instead.

    >>> number_fields({"amount": 12345.5, "claims": 3, "limit_c": 8.0, "codes": ["A", "B"], "trace": {}})
    [('amount', '12,345.50'), ('claims', '3'), ('limit c', '8'), ('codes', 'A, B')]
    """
    return [(gettext(k.replace("_", " ")), _shown(v, gettext)) for k, v in (numbers or {}).items() if k != "trace"]


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
    app.router.add_static("/static/", HERE / "static")
    return app


# -- helpers of every page

def _page(name: str, status: int = 200, **values: Any) -> web.Response:
    values.setdefault("lang", LANGUAGES[0])
    return web.Response(text=_templates(values["lang"]).get_template(name).render(**values), status=status,
                        content_type="text/html")


def _lang(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else LANGUAGES[0]


def _who(request: web.Request) -> dict[str, Any]:
    """The signed-in session ({user, role, csrf, lang}); a visitor without one is sent to the sign-in page."""
    s = request.app[CONSOLE].session(request.cookies.get(SESSION_COOKIE))
    if s is None:
        raise web.HTTPSeeOther("/login")
    s["lang"] = _lang(request)
    return s


def _error(status: int, title: str, message: str, s: dict[str, Any] | None, lang: str | None = None) -> web.Response:
    lang = lang or (s or {}).get("lang") or LANGUAGES[0]
    return _page("error.html", status, title=tr(lang, title), message=message, user=s and s["user"],
                 role=s and s["role"], csrf=s and s["csrf"], lang=lang)


def _forged(form: Any, s: dict[str, Any] | None) -> web.Response | None:
    """The refusal of a form that did not come from this session (its CSRF token), or None."""
    if s is None or not hmac.compare_digest(str(form.get("csrf", "")), s["csrf"]):
        lang = (s or {}).get("lang", LANGUAGES[0])
        return _error(403, N_("Refused"), tr(lang, "the form did not come from this session (CSRF token)"), s)
    return None


@routes.get("/lang/{lang}")
async def language(request: web.Request) -> web.Response:
    """Switch the pages' language (a cookie) and go back where the user was."""
    lang = request.match_info["lang"]
    back = request.headers.get("Referer", "/")
    back = back if back.startswith(f"{request.scheme}://{request.host}/") else "/"
    response = web.HTTPSeeOther(back)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="Strict", max_age=365 * 86400)
    raise response


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
    return _page("login.html", user=None, error=None, lang=_lang(request))


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    form = await request.post()
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    if not console.store.check_password(name, password):
        lang = _lang(request)
        return _page("login.html", 401, user=None, error=tr(lang, "unknown user or wrong password"), lang=lang)
    response = web.HTTPSeeOther("/")
    response.set_cookie(SESSION_COOKIE, console.session_cookie(name), httponly=True, samesite="Strict",
                        max_age=SESSION_S)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    s = request.app[CONSOLE].session(request.cookies.get(SESSION_COOKIE))
    refused = _forged(await request.post(), s)
    if refused is not None:
        return refused
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE)
    raise response


# -- the queue, an institution, the cold-chain board

@routes.get("/")
async def queue(request: web.Request) -> web.Response:
    s = _who(request)
    console = request.app[CONSOLE]
    return _queue(request, s)


def _queue(request: web.Request, s: dict[str, Any], status: int = 200, notice: str | None = None,
           refused: list[str] | None = None) -> web.Response:
    console = request.app[CONSOLE]
    f = {k: request.query.get(k, "") for k in ("stream", "status", "family", "grade", "grid", "mine", "overdue")}
    if f["mine"]:
        f["assignee"] = s["user"]
    rows = console.queue(f)
    points = {inst: console.points_total(inst) for inst in {c.institution_id for c, _, _ in rows if c.institution_id}}
    learned = ({c.case_id: console.priority_of(c) for c, _, _ in rows if c.status != "closed"}
               if console.priority.ready else {})
    return _page("queue.html", status, rows=rows, points=points, learned=learned, now=_utc_now(),
                 verdicts=sum(console.priority.seen.values()), total=len(console.book.cases), f=f, streams=STREAMS,
                 statuses=STATUSES, families=sorted(console.families), grades=GRADES,
                 grids=sorted(console.grid_names), chart=_queue_chart(console, s["lang"]), charts=True, notice=notice,
                 refused=refused or [], bulk_statuses=("acknowledged", "in_progress"), **s)


def _utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _queue_chart(console: Console, lang: str) -> dict[str, Any]:
    """Open cases by family and grade: what the queue holds, at a glance (counted again at most every 5 s)."""
    import time

    cached = console.__dict__.get("_queue_chart")
    if cached is None or time.monotonic() - cached[0] > 5.0 or cached[1] != len(console.book.cases):
        counts: dict[tuple[str, str], int] = {}
        for c in console.book.cases.values():
            if c.status != "closed":
                k = (c.family, console.grade_of(c))
                counts[k] = counts.get(k, 0) + 1
        cached = console.__dict__["_queue_chart"] = (time.monotonic(), len(console.book.cases), counts)
    counts = cached[2]
    families = sorted({f for f, _ in counts}, key=lambda f: -sum(n for (g, _), n in counts.items() if g == f))[:15]
    grades = [g for g in (*GRADES, "") if any(k[1] == g for k in counts)]
    gettext = translations(lang).gettext
    return {"kind": "queue", "families": families, "grades": grades,
            "grade_names": [gettext(g) if g else gettext("not graded") for g in grades],
            "counts": [[counts.get((f, g), 0) for f in families] for g in grades],
            "labels": {"cases": gettext("open cases")}}


@routes.get("/institutions/{institution_id}")
async def institution_page(request: web.Request) -> web.Response:
    s = _who(request)
    console = request.app[CONSOLE]
    inst = request.match_info["institution_id"]
    points, shares = console.points(inst)
    cases = [c for c, _ in shares]
    record = console.scores.get(inst)
    if record is None and not cases:
        return _error(404, N_("No such institution"),
                      tr(s["lang"], "no score and no case for institution %(id)s", id=inst[:64]), s)
    history = sorted(console.history.get(inst, {}).items())
    share = {c.case_id: p for c, p in shares}
    cases.sort(key=lambda c: (c.status == "closed", -share[c.case_id], c.last_seen))
    z = sorted((record or {}).get("z", {}).items(), key=lambda kv: -kv[1])
    gettext = translations(s["lang"]).gettext
    chart = {"kind": "score", "points": [[day, round(v[0], 3), v[1]] for day, v in history],
             "labels": {"score": gettext("score"), "grade": gettext("grade"), "day": gettext("day")}}
    return _page("institution.html", inst=inst, r=record, z=z, features=(record or {}).get("features", {}),
                 history=history, cases=cases, chart=chart, charts=bool(history), points=points,
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
            row = (c, a, console.grid_of(c), Markup(trace_svg((a.get("numbers") or {}).get("trace"))),
                   trace_chart(a, s["lang"]))
            (silent if a["detector"] == "coldchain.sensor_silent" else excursions).append(row)
    excursions.sort(key=lambda r: r[1]["event_time"])
    silent.sort(key=lambda r: r[1]["event_time"])
    return _page("coldchain.html", excursions=excursions, silent=silent, charts=any(r[4] for r in excursions + silent),
                 can_change=console.may_change_stream(s["role"], "telemetry"), **s)


# -- watch lists

@routes.get("/watchlist")
async def watchlist_page(request: web.Request) -> web.Response:
    """Watch lists 重点监管名单 and excluded providers 黑名单: what every worker applies; supervisors edit."""
    return _watchlist(request.app[CONSOLE], _who(request))


def _watchlist(console: Console, s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
    entries = sorted(console.watchlist.items(), key=lambda kv: (kv[1].get("list", ""), kv[0]))
    return _page("watchlist.html", status, entries=entries, error=message, can_edit=s["role"] == "supervisor", **s)


@routes.get("/reports")
async def reports_page(request: web.Request) -> web.Response:
    """The monthly reports 报表 (``zhijian.reports``): every institution's antimicrobial stewardship rates against
    the targets, its departments' rates, and the 双排名 drug rankings (:mod:`streams.workbench.reports`);
    ``?month=YYYY-MM``, ``&institution=`` for one institution's departments and ranking."""
    s, book = _who(request), request.app[CONSOLE].reports
    months = book.months()
    month = request.query.get("month", "")
    if month not in months:
        month = months[0] if months else ""
    institution = request.query.get("institution", "").strip()[:64]
    return _page("reports.html", 200, months=months, month=month, institution=institution,
                 stewardship=book.stewardship(month), rankings=book.rankings(month, institution),
                 departments=book.departments(month, institution),
                 indicators=INDICATORS, **s)


@routes.get("/reports.xlsx")
async def reports_workbook(request: web.Request) -> web.Response:
    """A month's reports (``?month=YYYY-MM``, the latest by default) as a workbook: the stewardship indicators, the
    departments' rates and the 双排名 rankings, one sheet each (:func:`streams.workbench.reports.month_workbook`)."""
    s, book = _who(request), request.app[CONSOLE].reports
    months = book.months()
    month = request.query.get("month", "")
    if month not in months:
        if month:
            return web.Response(status=404, text=f"no report for {month[:7]}: the months with reports are "
                                                 f"{', '.join(months) or 'none yet'}")
        month = months[0] if months else ""
    if not month:
        return web.Response(status=404, text="no report yet: the monthly rules publish one when a month closes")
    body = month_workbook(book, month, translations(s["lang"]).gettext)
    return web.Response(body=body, headers={"Content-Disposition": f'attachment; filename="reports-{month}.xlsx"'},
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@routes.get("/sanctions")
async def sanctions_page(request: web.Request) -> web.Response:
    """处方权 sanctions: prescribers with three or more confirmed unjustified prescriptions, for a supervisor to
    confirm their excluded-list entry (:mod:`streams.workbench.sanctions`)."""
    from datetime import datetime, timezone

    from streams.workbench import sanctions

    s, console = _who(request), request.app[CONSOLE]
    found = sanctions.proposals(console.book.cases.values(), console.alerts, console.watchlist,
                                datetime.now(timezone.utc))
    numbers = {c: console.book.cases[c].number for p in found for c in p.cases}
    return _page("sanctions.html", 200, proposals=found, numbers=numbers, threshold=sanctions.THRESHOLD,
                 period_days=sanctions.PERIOD_DAYS, can_edit=s["role"] == "supervisor", **s)


@routes.post("/watchlist")
async def watchlist_change(request: web.Request) -> web.Response:
    s = _who(request)
    console, send_watch = request.app[CONSOLE], request.app[SEND_WATCH]
    form = await request.post()
    refused = _forged(form, s)
    if refused is not None:
        return refused
    if s["role"] != "supervisor":
        return _error(403, N_("Not allowed"), tr(s["lang"], "the %(role)s role may not edit the watch lists",
                                                  role=tr(s["lang"], s["role"])), s)
    if send_watch is None:
        return _error(503, N_("Not connected"), tr(s["lang"], "this console cannot write to the watch-list topic"), s)
    remove = str(form.get("remove", ""))
    if remove:
        if remove not in console.watchlist:
            return _watchlist(console, s, 404, tr(s["lang"], "no entry %(key)s on the watch lists", key=remove[:80]))
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

class Refusal(Exception):
    """A page that answers a request in place of what it asked for (an unknown case, a forged form)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def trace_chart(alert: dict[str, Any] | None, lang: str) -> dict[str, Any] | None:
    """A device's temperature around its alert as chart data: an excursion's readings (``numbers.trace`` with
    ``t``/``c``, the device's range as limits) or an abnormal-dynamics alert's hours against their normal."""
    from datetime import datetime, timezone

    trace = ((alert or {}).get("numbers") or {}).get("trace") or {}
    gettext = translations(lang).gettext
    labels = {"read": gettext("read"), "normal": gettext("normal for the hour"), "time": gettext("time")}
    if not _zone:
        set_timezone(REGION_TZ)

    def at(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).astimezone(_zone[0]).strftime("%m-%d %H:%M")

    def rounded(values: list[Any] | None) -> list[Any] | None:  # as a thermometer reads: to the hundredth
        return None if values is None else [None if v is None else round(v, 2) for v in values]

    if trace.get("t"):
        return {"kind": "trace", "times": [at(t) for t in trace["t"]], "read": rounded(trace["c"]), "normal": None,
                "limits": [trace.get("low_c"), trace.get("high_c")], "labels": labels}
    if trace.get("observed") and trace.get("start_t") is not None:
        n = len(trace["observed"])
        return {"kind": "trace", "times": [at(trace["start_t"] + 3600 * i) for i in range(n)],
                "read": rounded(trace["observed"]), "normal": rounded(trace["normal"]), "limits": None,
                "labels": labels}
    return None


@routes.get("/cases/{case_id}")
async def case_page(request: web.Request) -> web.Response:
    return _case(request, _who(request))


def _case_or_404(request: web.Request, s: dict[str, Any]) -> Any:
    case = request.app[CONSOLE].book.cases.get(request.match_info["case_id"])
    if case is None:
        raise Refusal(_error(404, N_("No such case"), tr(s["lang"], "there is no case %(id)s",
                                                  id=request.match_info["case_id"][:64]), s))
    return case


def _case(request: web.Request, s: dict[str, Any], status: int = 200, message: str | None = None) -> web.Response:
    """A case: its alerts summarised by rule and day (each row a filter), then one page of them with their numbers as
    labelled fields and their evidence, the strongest first; its thread (changes, assignments, comments — the
    alerts joining it are counted, not listed); the forms."""
    console = request.app[CONSOLE]
    try:
        case = _case_or_404(request, s)
    except Refusal as refused:
        return refused.response
    q = request.query
    detector, day = q.get("detector", ""), q.get("day", "")
    summary: dict[tuple[str, str], list[float]] = {}
    selected = []
    for aid in case.alert_ids:
        a = console.alerts[aid]
        d = local_day(a["event_time"])
        row = summary.setdefault((d, a["detector"]), [0, 0.0])
        row[0] += 1
        row[1] += money_of(a)
        if (not detector or a["detector"] == detector) and (not day or d == day):
            selected.append(a)
    selected.sort(key=lambda a: (a["event_time"], a["alert_id"]))
    pages = max(1, math.ceil(len(selected) / PAGE_SIZE))
    try:
        page = min(max(1, int(q.get("page", "1"))), pages)
    except ValueError:
        page = 1
    shown = selected[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    days = sorted({d for d, _ in summary})
    detectors = sorted({r for _, r in summary})
    gettext = translations(s["lang"]).gettext
    chart = {"kind": "alerts", "days": days, "labels": {"day": gettext("day"), "alerts": gettext("alerts")},
             "series": [{"name": r, "counts": [int(summary.get((d, r), (0, 0))[0]) for d in days]} for r in detectors]}
    strongest = console.alerts.get(case.strongest or "")
    trace = next((c for c in (trace_chart(a, s["lang"]) for a in ([strongest] if strongest else []) + shown) if c),
                 None) if case.stream == "telemetry" else None
    timeline = [e for e in case.history if e.kind != "alert"]
    users = [(name, role) for name, role in console.users() if console.may_change_stream(role, case.stream)]
    return _page("case.html", status, c=case, alerts=shown, strongest=strongest, summary=sorted(summary.items()),
                 detector=detector, day=day, page=page, pages=pages, selected=len(selected), chart=chart,
                 trace=trace, timeline=timeline, joined=len(case.history) - len(timeline), error=message, charts=True,
                 can_change=console.may_change(s["role"], case), users=users, now=_utc_now(),
                 next_statuses=TRANSITIONS[case.status], verdicts=VERDICTS, **s)


async def _form(request: web.Request, s: dict[str, Any]) -> Any:
    form = await request.post()
    refused = _forged(form, s)
    if refused is not None:
        raise Refusal(refused)
    return form


@routes.post("/cases/{case_id}")
async def change(request: web.Request) -> web.Response:
    s = _who(request)
    console, send_event = request.app[CONSOLE], request.app[SEND_EVENT]
    try:
        form = await _form(request, s)
        event = console.change(request.match_info["case_id"], s["user"], s["role"], str(form.get("status", "")),
                               str(form.get("verdict", "")) or None, str(form.get("comment", ""))[:2000])
    except Refusal as refused:
        return refused.response
    except KeyError:
        return _case(request, s)  # its 404
    except PermissionError as e:
        return _error(403, N_("Not allowed"), str(e), s)
    except CaseError as e:
        return _case(request, s, 400, str(e))
    if send_event is not None:
        await send_event(event)
    if form.get("back") == "/coldchain":  # acknowledged from the board: back to it (no other target)
        raise web.HTTPSeeOther("/coldchain")
    raise web.HTTPSeeOther(f"/cases/{event['case_id']}")


@routes.post("/cases/{case_id}/assign")
async def assign(request: web.Request) -> web.Response:
    """指派: a supervisor gives the case to a user; anyone who may change it can take it."""
    s = _who(request)
    console, send_event = request.app[CONSOLE], request.app[SEND_EVENT]
    try:
        form = await _form(request, s)
        event = console.assign(request.match_info["case_id"], s["user"], s["role"],
                               str(form.get("assignee", "")) or s["user"], str(form.get("comment", ""))[:2000])
    except Refusal as refused:
        return refused.response
    except KeyError:
        return _case(request, s)
    except PermissionError as e:
        return _error(403, N_("Not allowed"), str(e), s)
    except CaseError as e:
        return _case(request, s, 400, str(e))
    if send_event is not None:
        await send_event(event)
    raise web.HTTPSeeOther(f"/cases/{event['case_id']}")


@routes.post("/cases/{case_id}/comment")
async def comment(request: web.Request) -> web.Response:
    s = _who(request)
    console, send_event = request.app[CONSOLE], request.app[SEND_EVENT]
    try:
        form = await _form(request, s)
        event = console.comment(request.match_info["case_id"], s["user"], str(form.get("comment", ""))[:2000])
    except Refusal as refused:
        return refused.response
    except KeyError:
        return _case(request, s)
    except CaseError as e:
        return _case(request, s, 400, str(e))
    if send_event is not None:
        await send_event(event)
    raise web.HTTPSeeOther(f"/cases/{event['case_id']}#thread")


@routes.post("/bulk")
async def bulk(request: web.Request) -> web.Response:
    """One change for the cases ticked in the queue (bulk acknowledgement); the queue again, saying what was done."""
    s = _who(request)
    console, send_event = request.app[CONSOLE], request.app[SEND_EVENT]
    try:
        form = await _form(request, s)
    except Refusal as refused:
        return refused.response
    ids = [str(x) for x in form.getall("case", [])][:1000]
    events, refused_lines = console.bulk_change(ids, s["user"], s["role"], str(form.get("status", "acknowledged")),
                                                str(form.get("comment", ""))[:2000] or None)
    if send_event is not None:
        for event in events:
            await send_event(event)
    notice = tr(s["lang"], "%(done)d of %(asked)d cases changed", done=len(events), asked=len(set(ids)))
    return _queue(request, s, notice=notice, refused=refused_lines)


@routes.get("/cases/{case_id}/report.xlsx")
async def report(request: web.Request) -> web.Response:
    """稽核报告: the case, its alerts with their numbers, the evidence they rest on and the money, as a workbook."""
    from streams.workbench.report import case_report

    s = _who(request)
    console = request.app[CONSOLE]
    try:
        case = _case_or_404(request, s)
    except Refusal as refused:
        return refused.response
    alerts = sorted((console.alerts[a] for a in case.alert_ids), key=lambda a: (a["event_time"], a["alert_id"]))
    body = case_report(case, alerts, translations(s["lang"]).gettext, local_time_text, s["user"], _utc_now(),
                       console.grade_of(case))
    name = f"case-{case.number or case.case_id}.xlsx"
    return web.Response(body=body, headers={"Content-Disposition": f'attachment; filename="{name}"'},
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def local_time_text(value: str) -> str:
    """An ISO time in the region's zone as plain text (for a report)."""
    from datetime import datetime

    if not _zone:
        set_timezone(REGION_TZ)
    try:
        return datetime.fromisoformat(value).astimezone(_zone[0]).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(value or "")


# -- search

@routes.get("/search")
async def search(request: web.Request) -> web.Response:
    """Cases by case number, case id, institution, entity (doctor, prescriber, device, carrier, pseudonym) or the id
    of a record an alert rests on (claim, prescription, manifest)."""
    s = _who(request)
    console = request.app[CONSOLE]
    q = request.query.get("q", "")[:200]
    cases = console.search(q) if q.strip() else []
    return _page("search.html", q=q, cases=cases, pseudonym=None, searched=bool(q.strip()),
                 can_lookup=s["role"] == "supervisor" and console.pseudonymize is not None, **s)


@routes.post("/search/patient")
async def search_patient(request: web.Request) -> web.Response:
    """A supervisor looks a patient up by the raw identifier: pseudonymized with the region's key on the spot,
    never stored, logged or shown back (a POST: it is in no URL or access log)."""
    s = _who(request)
    console = request.app[CONSOLE]
    try:
        form = await _form(request, s)
    except Refusal as refused:
        return refused.response
    if s["role"] != "supervisor":
        return _error(403, N_("Not allowed"), tr(s["lang"], "only a supervisor looks a patient up by identifier"), s)
    raw = str(form.get("patient_id", ""))[:64]
    try:
        pseudonym, cases = console.search_patient(raw)
    except PermissionError as e:
        return _error(403, N_("Not allowed"), str(e), s)
    return _page("search.html", q="", cases=cases, pseudonym=pseudonym, searched=True, can_lookup=True, **s)


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
                watch_topic: str | None = None, verdicts_topic: str | None = None, pseudonymize: Any = None,
                reports_topic: str | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    from streams.workbench.risk.learned import POSITIVE
    from streams.workbench.risk.verdicts import record as verdict_record

    console = Console(store, grids, pseudonymize)
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
    side = []  # grades, watch lists, reports: the console goes on without them when their topic is missing
    if scores_topic:
        side.append(asyncio.create_task(follow_forever(
            conn, [scores_topic], _skipping("institution grades", lambda r: console.add_score(orjson.loads(r.value))),
            "institution grades", log, missing_ok=True)))
    if watch_topic:
        side.append(asyncio.create_task(follow_forever(
            conn, [watch_topic], _skipping("watch lists", lambda r: console.add_watch(r.key, r.value)),
            "watch lists", log, missing_ok=True)))
    if reports_topic:
        side.append(asyncio.create_task(follow_forever(
            conn, [reports_topic], _skipping("reports", lambda r: console.reports.add(r.key, r.value)),
            "reports", log, missing_ok=True)))
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
