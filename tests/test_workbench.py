"""The workbench without a broker: short case numbers given once and kept across restarts, assignment with due
dates by grade and comments replayed from the store, "my cases" and overdue filters, bulk changes with their
refusals, search by every identifier an analyst holds, a supervisor's look-up by raw patient id, the case page of a
10,000-alert case paged and summarised, the audit report, and the zh_CN catalogue covering every message."""
from __future__ import annotations

import asyncio
import io
import re
import time
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from models.contracts.pseudonym import Pseudonymizer
from streams.workbench.cases import DUE_DAYS, CaseError
from streams.workbench.console import Console
from streams.workbench.store import Store
from streams.workbench.web import local_day

KEY = Pseudonymizer(b"k" * 32)


def alert(n: int, day: int, detector: str = "claim.duplicate_charge", entity=("patient", None), stream="claim",
          institution: str = "H1", **numbers):
    kind, ident = entity
    return {"alert_id": f"a{n}", "detector": detector, "stream": stream,
            "entity": {"kind": kind, "id": ident or KEY("110101199001011234")}, "institution_id": institution,
            "region": "310101", "score": 1.0 + n / 1000, "severity": "high", "status": "open",
            "event_time": f"2026-{day // 28 + 10:02d}-{day % 28 + 1:02d}T{n % 24:02d}:00:00+00:00",
            "reason": f"reason {n}", "numbers": {"amount": 10.0 + n, **numbers},
            "evidence": [{"topic": f"zhijian.{stream}s", "partition": 1, "offset": n, "event_id": f"CLM-{n}"}]}


def store_with_users(path) -> Store:
    store = Store(str(path))
    for name, role in (("zhao", "supervisor"), ("li", "analyst"), ("wang", "operator")):
        store.add_user(name, role, f"{name}'s long password")
    return store


def test_case_numbers_are_given_once_per_year_and_kept_across_restarts(tmp_path):
    db = tmp_path / "console.db"
    first = Console(store_with_users(db))
    first.add_alert(alert(1, 0, entity=("carrier", "CR-1"), stream="waste", detector="waste.weight_discrepancy"))
    first.add_alert(alert(2, 1, entity=("device", "FR-1"), stream="telemetry", detector="coldchain.excursion"))
    first.apply_pending()  # after each batch read: the new numbers are kept
    numbers = {c.entity_id: c.number for c in first.book.cases.values()}
    assert sorted(numbers.values()) == ["2026-000001", "2026-000002"]
    again = Console(Store(str(db)))  # a restart reads the alert topic in another order: the numbers stay
    again.add_alert(alert(3, 2, entity=("doctor", "D-9"), detector="claim.over_standard"))
    again.add_alert(alert(2, 1, entity=("device", "FR-1"), stream="telemetry", detector="coldchain.excursion"))
    again.add_alert(alert(1, 0, entity=("carrier", "CR-1"), stream="waste", detector="waste.weight_discrepancy"))
    again.apply_pending()
    assert {c.entity_id: c.number for c in again.book.cases.values()} == {**numbers, "D-9": "2026-000003"}


def test_assignment_due_dates_comments_and_filters_replay_from_the_store(tmp_path):
    db = tmp_path / "console.db"
    console = Console(store_with_users(db))
    console.add_alert(alert(1, 0, institution="H-RED"))
    console.add_alert(alert(2, 0, entity=("device", "FR-1"), stream="telemetry", detector="coldchain.excursion"))
    console.add_score({"institution_id": "H-RED", "day": "2026-10-01", "score": 9.0, "grade": "red"})
    claim = next(c for c in console.book.cases.values() if c.stream == "claim")
    fridge = next(c for c in console.book.cases.values() if c.stream == "telemetry")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    event = console.assign(claim.case_id, "zhao", "supervisor", "li", "please look first")
    due = datetime.fromisoformat(event["due"])
    assert event["kind"] == "assign" and event["assignee"] == "li" and event["user"] == "zhao"
    assert timedelta(days=DUE_DAYS["red"]) <= due - before < timedelta(days=DUE_DAYS["red"], minutes=1)
    with pytest.raises(PermissionError, match="may take a case, not give it"):
        console.assign(claim.case_id, "li", "analyst", "zhao")
    with pytest.raises(CaseError, match="may not work telemetry cases"):
        console.assign(fridge.case_id, "zhao", "supervisor", "li")
    with pytest.raises(CaseError, match="there is no user"):
        console.assign(claim.case_id, "zhao", "supervisor", "nobody")
    console.assign(fridge.case_id, "wang", "operator", "wang")  # an operator takes a cold-chain case
    console.comment(claim.case_id, "li", "the patient was admitted twice")
    assert [c.entity_id for c, _, _ in console.queue({"assignee": "li"})] == [claim.entity_id]
    assert console.queue({"overdue": "1"}) == []
    claim.due = (before - timedelta(hours=1)).isoformat()  # as if three days had passed
    assert [c.case_id for c, _, _ in console.queue({"overdue": "1"})] == [claim.case_id]

    restarted = Console(Store(str(db)))
    restarted.add_alert(alert(1, 0, institution="H-RED"))
    restarted.add_alert(alert(2, 0, entity=("device", "FR-1"), stream="telemetry", detector="coldchain.excursion"))
    restarted.apply_pending()
    again = restarted.book.cases[claim.case_id]
    assert (again.assignee, again.due) == ("li", event["due"])
    assert [(e.kind, e.user, e.comment) for e in again.history if e.kind in ("assign", "comment")] == [
        ("assign", "zhao", "please look first"), ("comment", "li", "the patient was admitted twice")]
    assert restarted.book.cases[fridge.case_id].assignee == "wang"


def test_a_bulk_acknowledgement_says_which_cases_it_could_not_change(tmp_path):
    console = Console(store_with_users(tmp_path / "c.db"))
    for n in range(3):
        console.add_alert(alert(n, 0, entity=("doctor", f"D-{n}")))
    console.add_alert(alert(9, 0, entity=("device", "FR-1"), stream="telemetry", detector="coldchain.excursion"))
    ids = {c.entity_id: c.case_id for c in console.book.cases.values()}
    console.change(ids["D-2"], "li", "analyst", "closed", "justified", None)
    events, refused = console.bulk_change([ids["D-0"], ids["D-1"], ids["D-2"], ids["FR-1"], "nope", ids["D-0"]],
                                          "li", "analyst", "acknowledged", "seen in the morning round")
    assert [(e["case_id"], e["status"], e["comment"]) for e in events] == [
        (ids["D-0"], "acknowledged", "seen in the morning round"), (ids["D-1"], "acknowledged", "seen in the morning round")]
    number = {c.case_id: c.number for c in console.book.cases.values()}
    assert refused == [f"{number[ids['D-2']]}: a case closed cannot become acknowledged",
                       f"{number[ids['FR-1']]}: the analyst role may not change telemetry cases", "nope: no such case"]


def test_search_finds_a_case_by_every_identifier_an_analyst_holds(tmp_path):
    console = Console(store_with_users(tmp_path / "c.db"), pseudonymize=KEY.once)
    console.add_alert(alert(1, 0, claim_ids=["CLM-X1", "CLM-X2"], doctor_id="D-77"))
    console.add_alert(alert(2, 3, entity=("device", "FR-9"), stream="telemetry", detector="coldchain.excursion",
                            institution="CDC-1"))
    console.apply_pending()
    patient_case = next(c for c in console.book.cases.values() if c.entity_kind == "patient")
    fridge_case = next(c for c in console.book.cases.values() if c.entity_kind == "device")

    def found(q):
        return [c.case_id for c in console.search(q)]

    assert found(patient_case.number) == [patient_case.case_id]
    assert found(patient_case.case_id[:8]) == [patient_case.case_id]  # the first characters of its id
    assert found("clm-1") == found("CLM-X2") == found("D-77") == [patient_case.case_id]  # evidence and numbers
    assert found("fr-9") == found("CDC-1") == [fridge_case.case_id]
    assert found("H1") == [patient_case.case_id] and found("") == found("nothing") == []
    pseudonym, cases = console.search_patient(" 110101199001011234 ")  # as typed, a space around it
    assert pseudonym == KEY("110101199001011234") and [c.case_id for c in cases] == [patient_case.case_id]
    assert "110101199001011234" not in repr(console._index)  # the raw identifier is kept nowhere
    with pytest.raises(PermissionError, match="no pseudonymization key"):
        Console(Store(":memory:")).search_patient("110101199001011234")


def _client(console: Console):
    from aiohttp.test_utils import TestClient, TestServer

    from streams.workbench.web import make_app

    return TestClient(TestServer(make_app(console)))


async def _signed_in(client, user: str, lang: str | None = None) -> str:
    r = await client.post("/login", data={"user": user, "password": f"{user}'s long password"}, allow_redirects=False)
    client.session.cookie_jar.update_cookies(r.cookies)
    if lang:
        client.session.cookie_jar.update_cookies({"zj_lang": lang})
    page = await (await client.get("/")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_a_case_of_10000_alerts_is_summarised_paged_and_reported(tmp_path):
    console = Console(store_with_users(tmp_path / "c.db"))
    for n in range(10_000):
        console.add_alert(alert(n, n % 30, detector=("coldchain.excursion", "coldchain.breach")[n % 2],
                                entity=("device", "FR-1"), stream="telemetry", claim_id=f"C-{n}"))
    console.apply_pending()
    [case] = console.book.cases.values()
    assert case.alerts == 10_000

    async def run():
        client = _client(console)
        await client.start_server()
        try:
            await _signed_in(client, "li", "en")
            started = time.perf_counter()
            page = await (await client.get(f"/cases/{case.case_id}")).text()
            seconds = time.perf_counter() - started
            assert page.count('<tr class="alert') == 50 and "10,000 alerts, page 1 of 200" in page
            assert page.count('class="summary-row"') == 60  # 30 days × 2 rules
            assert "<dt>claim id</dt><dd>C-0</dd>" in page and "<dt>amount</dt><dd>10</dd>" in page
            assert "10,000 alerts joined the case" not in page and "9,999 alerts joined the case" in page
            one = await (await client.get(f"/cases/{case.case_id}?detector=coldchain.breach&day=2026-10-02&page=2"))\
                .text()
            expected = sum(1 for a in map(console.alerts.get, case.alert_ids) if a["detector"] == "coldchain.breach"
                           and local_day(a["event_time"]) == "2026-10-02")
            assert expected > 100  # counted on the region's day (UTC+8), not the UTC date
            assert f"{expected} alerts, page 2 of {-(-expected // 50)}" in one and one.count('<tr class="alert') == 50
            assert all(d == "coldchain.breach" for d in re.findall(r'<tr class="alert[^"]*"><td>([^<]+)</td>', one))
            r = await client.get(f"/cases/{case.case_id}/report.xlsx")
            book = zipfile.ZipFile(io.BytesIO(await r.read()))
            strings = book.read("xl/sharedStrings.xml").decode()
            assert r.status == 200 and case.number in strings and "C-9999" in strings and "CLM-9999" in strings
            assert len([n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]) == 4
            rows = re.findall(r"<row ", book.read("xl/worksheets/sheet2.xml").decode())
            assert len(rows) == 10_001  # a header and every alert
            return seconds
        finally:
            await client.close()

    seconds = asyncio.run(run())
    print(f"case page of 10,000 alerts: {seconds * 1000:.0f} ms")


def test_the_pages_are_chinese_by_default_and_english_on_request(tmp_path):
    console = Console(store_with_users(tmp_path / "c.db"))
    console.add_alert(alert(1, 0))

    async def run():
        client = _client(console)
        await client.start_server()
        try:
            login = await (await client.get("/login")).text()
            assert "<h1>登录</h1>" in login and 'lang="zh-CN"' in login
            await _signed_in(client, "li")
            queue = await (await client.get("/")).text()
            assert "案件队列" in queue and "待处理" in queue and "Case queue" not in queue
            client.session.cookie_jar.update_cookies({"zj_lang": "en"})
            queue = await (await client.get("/")).text()
            assert "Case queue" in queue and 'lang="en"' in queue and "案件队列" not in queue
            r = await client.get("/lang/zh_CN", allow_redirects=False)
            assert r.status == 303 and r.cookies["zj_lang"].value == "zh_CN"
        finally:
            await client.close()

    asyncio.run(run())


def test_every_message_of_the_pages_has_its_chinese_translation():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from streams.workbench import web

    root = web.HERE
    method_map = [("templates/**.html", "jinja2"), ("web.py", "python"), ("report.py", "python"),
                  ("reports.py", "python")]
    keywords = {"_": None, "gettext": None, "N_": None, "tr": (2,)}
    found = {m[2] for m in extract_from_dir(str(root), method_map, keywords=keywords)}
    found = {m if isinstance(m, str) else m[0] for m in found}
    assert len(found) > 150 and "Case queue" in found and "there is no case %(id)s" in found
    with open(root / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f)
    translated = {m.id: m.string for m in catalog if m.id}
    assert sorted(found - set(translated)) == []  # a message with no translation
    assert sorted(set(translated) - found) == []  # a translation of nothing (stale)
    for msgid, text in translated.items():
        assert text and re.findall(r"%\(\w+\)[sd]", msgid) == re.findall(r"%\(\w+\)[sd]", text) or \
            sorted(re.findall(r"%\(\w+\)[sd]", msgid)) == sorted(re.findall(r"%\(\w+\)[sd]", text)), msgid
    assert web.translations("zh_CN").gettext("closed") == "已结案"


def test_a_prescriber_with_three_confirmed_excess_prescriptions_is_proposed_and_a_supervisor_excludes_them(tmp_path):
    """处方管理办法 第四十六条: three excess prescriptions confirmed as unjustified → a restriction proposal; a
    justified case, a case of another rule and a fourth alert on a prescription already counted change nothing;
    the supervisor's confirmation writes the excluded-list entry with its basis, and the proposal goes away."""
    from streams.workbench import sanctions

    console = Console(store_with_users(tmp_path / "c.db"))
    rx = [alert(n, 3 + n, detector="prescription.over_supply", entity=("prescriber", "H1-D7"), stream="prescription")
          for n in range(4)]
    for a, ev in zip(rx, ("RX-1", "RX-2", "RX-2", "RX-3")):  # the third alert is about RX-2 again
        a["evidence"][0]["event_id"] = ev
    justified = [alert(10 + n, 3, detector="prescription.too_many_drugs", entity=("prescriber", "H1-D8"),
                       stream="prescription") for n in range(3)]
    other = [alert(20 + n, 3, detector="claim.over_standard", entity=("prescriber", "H1-D9")) for n in range(3)]
    for a in rx + justified + other:
        console.add_alert(a)
    console.apply_pending()
    case_of = {c.entity_id: c for c in console.book.cases.values()}
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert sanctions.proposals(console.book.cases.values(), console.alerts, console.watchlist, now) == []  # open
    console.change(case_of["H1-D7"].case_id, "li", "analyst", "closed", "violation", "no justification")
    console.change(case_of["H1-D8"].case_id, "li", "analyst", "closed", "justified", "travelling abroad")
    console.change(case_of["H1-D9"].case_id, "li", "analyst", "closed", "violation", "")
    [p] = sanctions.proposals(console.book.cases.values(), console.alerts, console.watchlist, now)
    assert (p.prescriber, p.institution, p.prescriptions, p.verdicts) == ("H1-D7", "H1", ["RX-1", "RX-2", "RX-3"],
                                                                         ["violation"])
    assert "第四十六条" in p.basis() and "RX-3" in p.basis()
    # a year later the prescriptions are out of the period
    assert sanctions.proposals(console.book.cases.values(), console.alerts, console.watchlist,
                               now + timedelta(days=400)) == []
    written = []

    async def send_watch(key, entry):
        written.append((key, entry))

    async def run():
        from aiohttp.test_utils import TestClient, TestServer

        from streams.workbench.web import make_app

        client = TestClient(TestServer(make_app(console, send_watch=send_watch)))
        await client.start_server()
        try:
            await _signed_in(client, "li")
            page = await (await client.get("/sanctions")).text()
            assert "处方权处理建议" in page and 'data-prescriber="H1-D7"' in page and "H1-D8" not in page
            assert 'id="confirm-H1-D7"' not in page  # an analyst sees, a supervisor confirms
            client.session.cookie_jar.clear()
            csrf = await _signed_in(client, "zhao")
            page = await (await client.get("/sanctions")).text()
            basis = re.search(r'name="basis" value="([^"]+)"', page).group(1)
            r = await client.post("/watchlist", data={"csrf": csrf, "entity_kind": "prescriber", "entity_id": "H1-D7",
                                                      "list": "excluded", "basis": basis}, allow_redirects=False)
            assert r.status == 303
            [(key, entry)] = written
            assert key == "prescriber:H1-D7" and entry["list"] == "excluded" and entry["set_by"] == "zhao"
            assert "RX-1, RX-2, RX-3" in entry["basis"]
            page = await (await client.get("/sanctions")).text()
            assert 'data-prescriber="H1-D7"' not in page and "暂无需处理的医师" in page
        finally:
            await client.close()

    asyncio.run(run())
