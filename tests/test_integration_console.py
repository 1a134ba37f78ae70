"""The workbench in Debian's headless Chromium: sign in, a case of several alerts, its evidence, a change with a
comment holding markup (escaped), a refused close without verdict, a forged form, a role that may not, an unknown
case; the change on zhijian.case-events; a restarted console shows the same case state. Grades, grids, the
institution page and the cold-chain board with their charts; watch lists reaching the worker; and the analyst's
day: Chinese pages, search by claim id, assignment with a due date, comments, "my cases", bulk acknowledgement, a
supervisor's look-up of a patient by raw identifier, the audit report. Tests that read English labels switch the
pages to English first (``/lang/en``), as a user would."""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from connectors.kafka.broker import free_port
from streams.workbench.store import Store
from models.contracts.alert import Alert, Source
from tests.kafka_helpers import produce, read_topic

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="make setup installs chromium-driver")]

T0 = 1791000000.0  # 2026-10-03


def alert(n: int, detector: str, stream: str, kind: str, entity: str, day: int, institution: str = "IT-H1",
          region: str = "310101", **numbers):
    return Alert.build(detector=detector, version="1", key=f"k{n}", stream=stream, severity="high", tier="violation",
                       entity_kind=kind, entity_id=entity, institution_id=institution, region=region,
                       event_t=T0 + day * 86400, score=1.0 + n, reason=f"reason {n}", numbers=numbers,
                       evidence=[Source(f"zhijian.{stream}", 2, 100 + n, f"ev{n}")])


def start_console(bootstrap: str, port: int, db: str, log, *extra: str, env: dict | None = None):
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "console", "--bootstrap-servers", bootstrap,
                             "--port", str(port), "--db", db, *extra], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the console exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the console did not answer")


def console_for(bootstrap: str, tmp_path, users: dict[str, str], *extra: str, env: dict | None = None):
    """A console on a free port with these users (name → role; password "<name>'s long password");
    returns its store path, port, address, log and process."""
    db = str(tmp_path / "console.db")
    store = Store(db)
    for name, role in users.items():
        store.add_user(name, role, f"{name}'s long password")
    port = free_port()
    log = open(tmp_path / "console.log", "wb")
    return db, port, f"http://127.0.0.1:{port}", log, start_console(bootstrap, port, db, log, *extra, env=env)


def post(url: str, fields: dict, cookie: str | None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")
    if cookie:
        req.add_header("Cookie", f"zj_session={cookie}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def session_of(cookie: str) -> dict:
    body = cookie.rsplit(".", 1)[0]
    return orjson.loads(base64.urlsafe_b64decode(body))


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def submit(browser, button_id: str, timeout: float = 30.0) -> None:
    """Click a form's button and wait until the answer has replaced the page.

    A click returns once the post is sent; on a loaded machine the old page is still there when the next
    line looks for the answer's elements. While the document changes, chromedriver may answer a question
    about the old page's element with an "unknown error" (the node no longer belongs to the document)
    rather than "stale element": both mean the old page is gone.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()

    def gone(_):
        try:
            page.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(browser, timeout).until(gone)
    WebDriverWait(browser, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return document.readyState") == "complete")


def sign_in(browser, base: str, user: str) -> None:
    """Sign ``user`` in (password "<user>'s long password"), the pages switched to English first."""
    from selenium.webdriver.common.by import By

    browser.get(base + "/lang/en")
    browser.get(base + "/login")
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(f"{user}'s long password")
    submit(browser, "signin")


def wait_for(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception:  # noqa: BLE001 — the page is still loading
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.3)


def test_a_case_is_triaged_in_the_browser_and_bad_input_changes_nothing(broker, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    bs = broker.bootstrap_servers
    carrier = [alert(n, "waste.weight_discrepancy", "waste", "carrier", "IT-CR-9", n, missing_kg=3.0) for n in range(3)]
    fridge = alert(7, "coldchain.excursion", "telemetry", "device", "IT-FR-1", 0, peak_c=9.5)
    for a in carrier + [fridge]:
        produce(bs, "zhijian.alerts", [a.to_json()], key=a.key.decode())
    db, port, base, log, proc = console_for(bs, tmp_path, {"li": "analyst", "wang": "operator"})
    try:
        browser.get(base + "/lang/en")  # the labels this test reads are the English ones
        browser.get(base + "/")
        assert browser.current_url.endswith("/login")
        browser.find_element(By.ID, "user").send_keys("li")
        browser.find_element(By.ID, "password").send_keys("wrong password!")
        submit(browser, "signin")
        assert "unknown user or wrong password" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "user").send_keys("li")
        browser.find_element(By.ID, "password").send_keys("li's long password")
        submit(browser, "signin")
        wait_for(lambda: browser.find_elements(By.ID, "queue"))  # signed in: the queue

        def carrier_row():
            browser.get(base + "/?family=waste.weight_discrepancy")
            rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "#queue tr.case") if "IT-CR-9" in r.text]
            if rows and rows[0].find_element(By.CSS_SELECTOR, ".alerts").text == "3":
                return rows[0].text, rows[0].find_element(By.TAG_NAME, "a").get_attribute("href")
            return None
        text, case_url = wait_for(carrier_row)  # three alerts of one carrier: one case
        assert "open" in text
        browser.get(case_url)
        case_id = case_url.rsplit("/", 1)[1]
        evidence = browser.find_element(By.ID, "alerts").text
        assert "zhijian.waste/2/100" in evidence and "zhijian.waste/2/102" in evidence

        Select(browser.find_element(By.ID, "new-status")).select_by_visible_text("acknowledged")
        browser.find_element(By.ID, "comment").send_keys("<b>called the carrier</b>")
        submit(browser, "apply")
        assert browser.find_element(By.ID, "status").text == "acknowledged"
        timeline = browser.find_element(By.ID, "timeline")
        assert "<b>called the carrier</b>" in timeline.text  # shown as typed, not rendered
        assert timeline.find_elements(By.TAG_NAME, "b") == []

        Select(browser.find_element(By.ID, "new-status")).select_by_visible_text("closed")
        submit(browser, "apply")  # no verdict
        assert "closing a case needs a verdict" in browser.find_element(By.ID, "error").text
        assert browser.find_element(By.ID, "status").text == "acknowledged"
        browser.get(base + "/institutions/IT-H1")  # two open cases: two points (记分), a blue points grade
        points_before = float(browser.find_element(By.ID, "points").text)
        assert 1.5 < points_before < 2.5 and browser.find_element(By.ID, "points-grade").text == "blue"
        browser.get(case_url)
        Select(browser.find_element(By.ID, "new-status")).select_by_visible_text("closed")
        Select(browser.find_element(By.ID, "new-verdict")).select_by_visible_text("fraud")
        submit(browser, "apply")
        assert browser.find_element(By.ID, "status").text == "closed"
        assert browser.find_element(By.ID, "verdict").text == "fraud"
        browser.get(base + "/institutions/IT-H1")  # confirmed fraud: 12 points, the institution turns red
        assert float(browser.find_element(By.ID, "points").text) == round(points_before - 1 + 12, 1)
        assert browser.find_element(By.ID, "points-grade").text == "red"
        assert "closed — fraud" in browser.find_element(By.ID, "cases").text
        browser.get(case_url)

        browser.get(base + "/cases/no-such-case")
        assert "there is no case no-such-case" in browser.find_element(By.ID, "error").text

        cookie = browser.get_cookie("zj_session")["value"]
        status, _ = post(case_url, {"status": "in_progress"}, cookie)  # no CSRF token: a forged form
        assert status == 403
        # the operator may not change a waste case, even with a valid form of their own
        req = urllib.request.Request(base + "/login", data=b"user=wang&password=wang%27s+long+password", method="POST")
        opener = urllib.request.build_opener(NoRedirect())
        try:
            opener.open(req, timeout=10)
        except urllib.error.HTTPError as e:
            op_cookie = e.headers["Set-Cookie"].split("zj_session=", 1)[1].split(";", 1)[0]
        status, page = post(case_url, {"status": "in_progress", "csrf": session_of(op_cookie)["c"]}, op_cookie)
        assert status == 403 and "the operator role may not change waste cases" in page

        events = [orjson.loads(r.value) for r in read_topic(bs, "zhijian.case-events", lambda rs: len(rs) >= 2)]
        assert [(e["case_id"], e["status"], e.get("verdict"), e["user"]) for e in events] == [
            (case_id, "acknowledged", None, "li"), (case_id, "closed", "fraud", "li")]
        assert events[0]["comment"] == "<b>called the carrier</b>"
        # closed as fraud: a finding on the case's institution, for the learned risk score
        [finding] = [orjson.loads(r.value) for r in read_topic(bs, "zhijian.institution-verdicts", lambda rs: len(rs) >= 1)]
        assert (finding["verdict"], finding["source"], finding["case_id"], finding["user"]) == ("fraud", "workbench", case_id, "li")
        assert finding["institution_id"] and finding["decided_on"] == events[1]["at"][:10]
    finally:
        proc.terminate()
        proc.wait(20)
    proc = start_console(bs, port, db, log)  # rebuilt from the alert topic and the store
    try:
        def restored():
            browser.get(case_url)  # the same session: the store keeps the key that signs it
            return browser.find_element(By.ID, "status").text == "closed"
        wait_for(restored)
        assert browser.find_element(By.ID, "verdict").text == "fraud"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 — keep the 303 and its cookie
        return None


def score(inst: str, day: str, value: float, grade: str, **z):
    return {"schema_version": 1, "institution_id": inst, "day": day, "score": value, "grade": grade, "rank": 1, "of": 2,
            "peer_group": "inpatient", "claims": 900, "beneficiaries": 400, "complete": True,
            "features": {k: 0.5 for k in z}, "z": z, "top": sorted(z, key=lambda k: -z[k])[:3]}


def test_grades_grids_the_institution_page_and_the_cold_chain_board(broker, browser, tmp_path):
    from selenium.webdriver.common.by import By

    bs = broker.bootstrap_servers
    mine = [alert(20 + n, "claim.duplicate_charge", "claim", "institution", "IT-H7", n, institution="IT-H7",
                  region="310104", claim_id=f"C{n}") for n in range(2)]
    other = alert(30, "claim.unbundling", "claim", "institution", "IT-H8", 0, institution="IT-H8", region="310101")
    readings = {"t": [T0 + 600 * i for i in range(18)], "c": [5.0] * 6 + [7.0, 9.0, 10.5, 11.0, 10.0, 9.2] + [6.0] * 6,
                "low_c": 2.0, "high_c": 8.0}
    fridge = alert(31, "coldchain.excursion", "telemetry", "device", "IT-FR-9", 0, institution="IT-CDC", peak_c=11.0,
                   trace=readings)
    logger = alert(32, "coldchain.sensor_silent", "telemetry", "device", "IT-FR-8", 0, institution="IT-CDC")
    trace = {"start_t": T0, "observed": [5.0 + 0.1 * h if h > 18 else 5.0 for h in range(24)],
             "normal": [5.0] * 24, "sd": [0.1] * 24}
    drifting = alert(33, "coldchain.abnormal_dynamics", "telemetry", "device", "IT-FR-7", 0, institution="IT-CDC",
                     direction="rise", channel="hours", trace=trace)
    for a in mine + [other, fridge, logger, drifting]:
        produce(bs, "zhijian.alerts", [a.to_json()], key=a.key.decode())
    for record in (score("IT-H7", "2026-10-01", 2.0, "yellow", amount_per_claim=3.0),
                   score("IT-H7", "2026-10-02", 7.5, "red", shared_physicians=9.0, amount_per_claim=4.0),
                   score("IT-H8", "2026-10-02", 0.1, "blue", amount_per_claim=0.5)):
        produce(bs, "zhijian.institution-scores", [orjson.dumps(record)], key=record["institution_id"])
    grids = tmp_path / "grids.toml"
    grids.write_text('[grids]\n"310104" = "Xuhui grid"\n')
    _, port, base, log, proc = console_for(bs, tmp_path, {"zhao": "analyst", "qian": "operator"}, "--grids", str(grids))
    try:
        sign_in(browser, base, "zhao")  # in English

        def rows(query):
            browser.get(base + "/?" + query)
            return [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#queue tr.case")]
        red = wait_for(lambda: [r for r in rows("grade=red") if "IT-H7" in r])
        assert all("IT-H7" in r and "red" in r and "Xuhui grid" in r for r in rows("grade=red"))
        assert len(red) == 1  # two alerts of one institution and detector family: one case
        # times in the region's zone (UTC+8), UTC on hover
        when = browser.find_element(By.CSS_SELECTOR, "#queue tr.case time")
        utc = datetime.fromisoformat(when.get_attribute("datetime")).astimezone(timezone.utc)
        assert when.text == (utc + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
        assert when.get_attribute("title") == utc.strftime("%Y-%m-%d %H:%M:%S UTC")
        xuhui = rows("grid=Xuhui+grid")
        assert xuhui and all("Xuhui grid" in r for r in xuhui)
        assert any("IT-H8" in r and "blue" in r and "310101" in r for r in rows("grid=310101"))  # no grid named: its region

        browser.get(base + "/institutions/IT-H7")
        assert browser.find_element(By.ID, "grade").text == "red" and browser.find_element(By.ID, "score").text == "7.50"
        rates = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#rates tr.rate")]
        assert rates[0].startswith("shared_physicians") and "9.00" in rates[0]
        history = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
        assert history == ["2026-10-02 7.50 red", "2026-10-01 2.00 yellow"]
        # the score over time, drawn by ECharts: a point per day published, coloured by its grade
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#score-chart[data-drawn=score] canvas"))
        assert browser.execute_script(
            "const o = echarts.getInstanceByDom(document.getElementById('score-chart')).getOption();"
            "return o.series[0].data.map(p => [p.value[0], p.value[1], p.grade]);") == [
            ["2026-10-01", 2.0, "yellow"], ["2026-10-02", 7.5, "red"]]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#cases tr.case")) == 1
        browser.get(base + "/institutions/NO-SUCH")
        assert "no score and no case for institution NO-SUCH" in browser.find_element(By.ID, "error").text

        # the cold-chain board: an analyst sees it, an operator acknowledges from it
        browser.get(base + "/coldchain")
        wait_for(lambda: browser.get(base + "/coldchain") or "IT-FR-9" in browser.find_element(By.ID, "excursions").text)
        assert "IT-FR-8" in browser.find_element(By.ID, "silent").text
        # each device's temperature as ECharts draws it: the drifting one's last day hour by hour against each hour's
        # normal, the excursion's readings around it with the fridge's limits drawn
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".device-chart[data-drawn=trace] canvas")) == 2)
        charts = browser.execute_script(
            "return [...document.querySelectorAll('.device-chart')].map(el => {"
            " const o = echarts.getInstanceByDom(el).getOption();"
            " return [el.closest('tr').cells[0].textContent, o.series.map(s => s.data.length),"
            "         (o.series[0].markLine.data || []).map(d => d.yAxis), o.series[0].data[23] ?? null]; });")
        assert sorted(charts, key=lambda c: c[0]) == [["IT-FR-7", [24, 24], [], 7.3],
                                                      ["IT-FR-9", [18], [2.0, 8.0], None]]
        assert not browser.find_elements(By.CSS_SELECTOR, "form.ack")  # the analyst may not change cold-chain cases
        browser.delete_all_cookies()
        sign_in(browser, base, "qian")  # in English
        browser.get(base + "/coldchain")
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#excursions tr.device") if "IT-FR-9" in r.text)
        assert "open" in row.find_element(By.CSS_SELECTOR, ".status").text
        row.find_element(By.CSS_SELECTOR, ".ack-comment").send_keys("moved the vials to the backup fridge")
        row.find_element(By.CSS_SELECTOR, ".ack-button").get_attribute("class")  # the button is there
        row.find_element(By.CSS_SELECTOR, ".ack-button").click()
        wait_for(lambda: browser.current_url.endswith("/coldchain") and any(
            "IT-FR-9" in r.text and "acknowledged" in r.text
            for r in browser.find_elements(By.CSS_SELECTOR, "#excursions tr.device")))
        assert browser.current_url.endswith("/coldchain")
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#excursions tr.device") if "IT-FR-9" in r.text)
        assert "acknowledged" in row.find_element(By.CSS_SELECTOR, ".status").text
        events = [orjson.loads(r.value) for r in read_topic(bs, "zhijian.case-events", lambda rs: any(
            b"backup fridge" in r.value for r in rs))]
        [ack] = [e for e in events if e.get("comment") == "moved the vials to the backup fridge"]
        assert (ack["status"], ack["user"]) == ("acknowledged", "qian")
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_watch_lists_edited_in_the_console_reach_the_worker(broker, worker, browser, tmp_path):
    """A supervisor excludes a doctor and watch-lists a prescriber in the browser; the entries go out on
    zhijian.watchlist, the running worker applies them — a claim by the excluded doctor raises
    claim.excluded_provider, five days' supply from the watched prescriber breaks the halved 7-day limit — and a
    removal is a tombstone; a drug goes on the key-monitored list with its name and the worker takes it (what the
    rule makes of it: tests/test_prescription_catalogue_sim.py). An analyst, a forged form and an identifier with a
    space change nothing."""
    import copy

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from models.contracts.records import load_schema

    bs = broker.bootstrap_servers
    db, port, base, log, proc = console_for(bs, tmp_path, {"zhao": "supervisor", "li": "analyst"})
    try:
        sign_in(browser, base, "zhao")  # in English
        browser.get(base + "/watchlist")
        for kind, ident, lst, factor in (("doctor", "IT-WL-D1", "excluded", ""), ("prescriber", "IT-WL-P1", "watch", "0.5")):
            Select(browser.find_element(By.ID, "entity-kind")).select_by_visible_text(kind)
            browser.find_element(By.ID, "entity-id").send_keys(ident)
            Select(browser.find_element(By.ID, "list")).select_by_value(lst)
            browser.find_element(By.ID, "factor").send_keys(factor)
            browser.find_element(By.ID, "basis").send_keys("YB-2026-117")
            submit(browser, "watch-add")
        Select(browser.find_element(By.ID, "entity-kind")).select_by_visible_text("doctor")
        browser.find_element(By.ID, "entity-id").send_keys("IT WL")  # a space: not an identifier
        submit(browser, "watch-add")
        assert "entity_id must be a code" in browser.find_element(By.ID, "error").text
        rows = {r.find_element(By.CSS_SELECTOR, ".entity").text: r.find_element(By.CSS_SELECTOR, ".list").text
                for r in browser.find_elements(By.CSS_SELECTOR, "#watchlist tr.entry")}
        assert rows == {"doctor:IT-WL-D1": "excluded", "prescriber:IT-WL-P1": "watch"}
        cookie = browser.get_cookie("zj_session")["value"]
        assert post(base + "/watchlist", {"remove": "doctor:IT-WL-D1"}, cookie)[0] == 403  # no CSRF token
        li = login_cookie(base, "li", "li's long password")
        status, page = post(base + "/watchlist", {"remove": "doctor:IT-WL-D1", "csrf": session_of(li)["c"]}, li)
        assert status == 403 and "分析员 角色不能编辑监管名单" in page  # no language chosen: Chinese

        records = read_topic(bs, "zhijian.watchlist", lambda rs: len(rs) >= 2)
        entries = {r.key.decode(): orjson.loads(r.value) for r in records}
        assert entries["doctor:IT-WL-D1"]["list"] == "excluded" and entries["doctor:IT-WL-D1"]["set_by"] == "zhao"
        assert entries["prescriber:IT-WL-P1"]["factor"] == 0.5
        worker.wait_metric("zhijian_reference_records_total", 2, table="watchlist", outcome="applied")

        claim = copy.deepcopy(load_schema("claim")["examples"][0])
        claim.update(claim_id="IT-WL-CL1", doctor_id="IT-WL-D1")
        rx = copy.deepcopy(load_schema("prescription")["examples"][0])
        rx.update(prescription_id="IT-WL-RX1", prescriber_id="IT-WL-P1", visit_type="outpatient")
        rx["items"] = [{**rx["items"][0], "days_supply": 5}]
        produce(bs, "zhijian.claims", [claim], key=claim["patient_id"])
        produce(bs, "zhijian.prescriptions", [rx], key=rx["patient_id"])
        found = read_topic(bs, "zhijian.alerts", lambda rs: sum(b"IT-WL-" in r.value for r in rs) >= 2, timeout=60)
        alerts = {a["detector"]: a for a in (orjson.loads(r.value) for r in found if b"IT-WL-" in r.value)}
        excluded = alerts["claim.excluded_provider"]
        assert excluded["entity"] == {"kind": "doctor", "id": "IT-WL-D1"}
        assert excluded["numbers"]["excluded"] == [{"kind": "doctor", "id": "IT-WL-D1", "as": "doctor"}]
        assert "YB-2026-117" not in orjson.dumps(excluded).decode()  # the basis stays on the list, not in alerts
        over = alerts["prescription.over_supply"]
        assert over["numbers"]["limit_days"] == 3.5 and over["numbers"]["watch_factor"] == 0.5
        assert over["entity"] == {"kind": "prescriber", "id": "IT-WL-P1"}

        browser.get(base + "/watchlist")
        submit(browser, "remove-doctor:IT-WL-D1")
        assert [r.find_element(By.CSS_SELECTOR, ".entity").text
                for r in browser.find_elements(By.CSS_SELECTOR, "#watchlist tr.entry")] == ["prescriber:IT-WL-P1"]
        gone = read_topic(bs, "zhijian.watchlist", lambda rs: any(r.value is None for r in rs))
        assert [r.key for r in gone if r.value is None] == [b"doctor:IT-WL-D1"]

        # the key-monitored list 重点监控药品 (issue 23 item 3): a drug or consumable code with its name, never a doctor
        applied = worker.metric("zhijian_reference_records_total", table="watchlist", outcome="applied")
        Select(browser.find_element(By.ID, "entity-kind")).select_by_visible_text("doctor")
        browser.find_element(By.ID, "entity-id").send_keys("IT-WL-D2")
        Select(browser.find_element(By.ID, "list")).select_by_value("key_monitored")
        submit(browser, "watch-add")
        assert "a drug or a consumable goes on the key_monitored list, and only they do" in browser.find_element(
            By.ID, "error").text
        Select(browser.find_element(By.ID, "entity-kind")).select_by_visible_text("drug")
        browser.find_element(By.ID, "entity-id").send_keys("IT-KM-OXI")
        Select(browser.find_element(By.ID, "list")).select_by_value("key_monitored")
        browser.find_element(By.ID, "name").send_keys("oxiracetam 1 g")
        browser.find_element(By.ID, "basis").send_keys("国卫办医函〔2019〕558号")
        submit(browser, "watch-add")
        row = [r for r in browser.find_elements(By.CSS_SELECTOR, "#watchlist tr.entry")
               if r.find_element(By.CSS_SELECTOR, ".entity").text == "drug:IT-KM-OXI"]
        assert [r.find_element(By.CSS_SELECTOR, ".name").text for r in row] == ["oxiracetam 1 g"]
        listed = read_topic(bs, "zhijian.watchlist", lambda rs: any(r.key == b"drug:IT-KM-OXI" for r in rs))
        [entry] = [orjson.loads(r.value) for r in listed if r.key == b"drug:IT-KM-OXI"]
        assert (entry["list"], entry["name"], entry["set_by"]) == ("key_monitored", "oxiracetam 1 g", "zhao")
        worker.wait_metric("zhijian_reference_records_total", applied + 1, table="watchlist", outcome="applied")
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def login_cookie(base: str, user: str, password: str) -> str:
    data = urllib.parse.urlencode({"user": user, "password": password}).encode()
    try:
        urllib.request.build_opener(NoRedirect()).open(urllib.request.Request(base + "/login", data=data), timeout=10)
    except urllib.error.HTTPError as e:
        return e.headers["Set-Cookie"].split("zj_session=", 1)[1].split(";", 1)[0]
    raise AssertionError("no session cookie")


def test_an_analysts_day_search_assignment_bulk_acknowledgement_and_the_report(broker, browser, tmp_path):
    """In Chinese, as the workbench opens: a supervisor finds a case by the id of a claim its alert rests on,
    assigns it to an analyst (the due date follows the institution's red grade), comments; looks the patient up by
    the raw identifier (the page shows the pseudonym, never the identifier); takes the audit report away. The analyst
    sees the case under "my cases" and acknowledges two cases at once from the queue. Every change is on
    zhijian.case-events with who did it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from models.contracts.pseudonym import Pseudonymizer

    key = "k" * 40
    raw = "310101198805052345"
    patient = Pseudonymizer(key.encode())(raw)
    bs = broker.bootstrap_servers
    # a region of their own: the other tests' alerts and scores are on the same broker
    dup = [alert(40 + n, "claim.duplicate_charge", "claim", "patient", patient, n, institution="IT-H9",
                 region="310120", claim_ids=[f"IT-CLM-{n}", f"IT-CLM-{n + 10}"], duplicate_amount=120.0 + n)
           for n in range(3)]
    doctors = [alert(50 + n, "claim.over_standard", "claim", "doctor", f"IT-DOC-{n}", 0, institution="IT-H9",
                     region="310120") for n in range(2)]
    for a in dup + doctors:
        produce(bs, "zhijian.alerts", [a.to_json()], key=a.key.decode())
    produce(bs, "zhijian.institution-scores", [orjson.dumps(score("IT-H9", "2026-10-02", 8.0, "red", x=4.0))],
            key="IT-H9")
    db, port, base, log, proc = console_for(bs, tmp_path, {"zhao": "supervisor", "li": "analyst"},
                                            env={"ZHIJIAN_PSEUDONYM_KEY": key})
    try:
        browser.get(base + "/login")
        assert browser.find_element(By.TAG_NAME, "h1").text == "登录"  # Chinese unless asked otherwise
        browser.find_element(By.ID, "user").send_keys("zhao")
        browser.find_element(By.ID, "password").send_keys("zhao's long password")
        submit(browser, "signin")
        assert browser.find_element(By.ID, "nav-queue").text == "案件队列"
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#queue-chart[data-drawn=queue] canvas"))
        # the institution's grade (red) has arrived: the due date follows it
        wait_for(lambda: browser.get(base + "/?grade=red&grid=310120") or len(browser.find_elements(By.CSS_SELECTOR,
                                                                                         "#queue tr.case")) == 3)

        def search_claim():  # the evidence's record id (ev41) and a claim id among the numbers
            browser.get(base + "/search?q=IT-CLM-11")
            return browser.find_elements(By.CSS_SELECTOR, "#results a.case-number")
        [link] = wait_for(search_claim)
        number = link.text
        assert re.fullmatch(r"2026-\d{6}", number)
        browser.find_element(By.ID, "search").send_keys(number)  # the number in the header's search box
        submit(browser, "search-go")
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a.case-number")] == [number]
        browser.find_element(By.CSS_SELECTOR, "#results a.case-number").click()
        wait_for(lambda: browser.find_element(By.ID, "case-number").text == number)
        case_url = browser.current_url
        case_id = case_url.rsplit("/", 1)[1]
        assert browser.find_element(By.ID, "money").text == "363.00"
        fields = browser.find_element(By.CSS_SELECTOR, "#strongest dl.numbers").text
        assert "duplicate amount" in fields and "IT-CLM-2, IT-CLM-12" in fields  # labelled fields, not a JSON string
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts-chart[data-drawn=alerts] canvas"))
        assert browser.execute_script(
            "return echarts.getInstanceByDom(document.getElementById('alerts-chart')).getOption()"
            ".series.map(s => [s.name, s.data.reduce((a, b) => a + b, 0)]);") == [["claim.duplicate_charge", 3]]

        Select(browser.find_element(By.ID, "assignee-select")).select_by_value("li")
        submit(browser, "assign")
        assert browser.find_element(By.ID, "assignee").text == "li"
        due = datetime.fromisoformat(browser.find_element(By.CSS_SELECTOR, "#due time").get_attribute("datetime"))
        assert timedelta(days=2, hours=23) < due - datetime.now(timezone.utc) <= timedelta(days=3)  # red: three days
        browser.find_element(By.ID, "new-comment").send_keys("请核对两张结算单")
        submit(browser, "comment-add")
        assert "请核对两张结算单" in browser.find_element(By.ID, "timeline").text

        browser.get(base + "/search")
        browser.find_element(By.ID, "patient-id").send_keys(raw)
        submit(browser, "patient-go")
        assert browser.find_element(By.ID, "pseudonym").text.endswith(patient)
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a.case-number")] == [number]
        assert raw not in browser.page_source

        cookie = browser.get_cookie("zj_session")["value"]
        req = urllib.request.Request(case_url + "/report.xlsx", headers={"Cookie": f"zj_session={cookie}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert f'filename="case-{number}.xlsx"' in r.headers["Content-Disposition"]
            book = zipfile.ZipFile(io.BytesIO(r.read()))
        strings = book.read("xl/sharedStrings.xml").decode()
        assert number in strings and "ev41" in strings and "稽核报告" in strings and "li" in strings

        browser.delete_all_cookies()
        browser.get(base + "/login")
        browser.find_element(By.ID, "user").send_keys("li")
        browser.find_element(By.ID, "password").send_keys("li's long password")
        submit(browser, "signin")
        browser.get(base + "/?mine=1")
        assert [r.get_attribute("data-case") for r in browser.find_elements(By.CSS_SELECTOR, "#queue tr.case")] == [
            case_id]
        browser.get(base + "/?family=claim.over_standard&grid=310120")
        ticks = browser.find_elements(By.CSS_SELECTOR, "#queue tr.case input.tick")
        assert len(ticks) == 2
        for t in ticks:
            t.click()
        browser.find_element(By.ID, "bulk-comment").send_keys("晨会已阅")
        submit(browser, "bulk-apply")
        assert browser.find_element(By.ID, "notice").text == "已处理 2 / 2 个案件"
        doctor_cases = [r.get_attribute("data-case") for r in browser.find_elements(By.CSS_SELECTOR, "#queue tr.case")
                        if "IT-DOC-" in r.text]
        assert len(doctor_cases) == 2
        # the sanctions page (处方权): nobody to propose here (no prescription case was confirmed), read-only for li
        browser.find_element(By.ID, "nav-sanctions").click()
        assert browser.find_element(By.TAG_NAME, "h1").text == "处方权处理建议"
        assert "暂无需处理的医师" in browser.find_element(By.ID, "sanctions").text
        assert browser.find_elements(By.ID, "read-only")

        ours = {case_id, *doctor_cases}

        def case_events(records):
            return [e for e in (orjson.loads(r.value) for r in records) if e["case_id"] in ours]
        events = case_events(read_topic(bs, "zhijian.case-events", lambda rs: len(case_events(rs)) >= 4))
        assert [(e["kind"], e["user"], e.get("assignee"), e.get("status"), e.get("comment")) for e in events] == [
            ("assign", "zhao", "li", None, None), ("comment", "zhao", None, None, "请核对两张结算单"),
            ("status", "li", None, "acknowledged", "晨会已阅"), ("status", "li", None, "acknowledged", "晨会已阅")]
        assert events[0]["case_id"] == events[1]["case_id"] == case_id
        assert sorted(e["case_id"] for e in events[2:]) == sorted(doctor_cases)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_the_monthly_reports_the_worker_publishes_are_on_the_reports_page(broker, worker, browser, tmp_path):
    """双排名 end to end: the running worker ranks an institution's May prescriptions (re-keyed by institution) when
    May closes — a live prescription on every input partition moves the time past May's end and its grace —
    and publishes the ranking on zhijian.reports under kind:institution:period; a stewardship report is there too
    (as the detector publishes it: tests/test_reports.py); the console follows the topic and the reports page shows
    both in the browser, the rate over its target marked."""
    import copy

    from selenium.webdriver.common.by import By

    from connectors.kafka.producer import partition_for
    from models.contracts.records import load_schema
    from tests.test_reports import stewardship_reports

    bs = broker.bootstrap_servers
    base_rx = load_schema("prescription")["examples"][0]

    def rx(n, day, doc, drug, amount, inst="IT-RANK-H1"):
        e = copy.deepcopy(base_rx)
        e.update(prescription_id=f"IT-RANK-{n}", institution_id=inst, prescriber_id=doc, event_time=f"{day}T10:00:00+08:00")
        e["items"] = [{**base_rx["items"][0], "drug_code": drug, "amount": amount}]
        return e

    may, n = [], 0
    for d in range(5, 11):
        for doc, drug, amount, times in (("IT-RANK-D1", "X-A", 300.0, 3), ("IT-RANK-D2", "X-B", 100.0, 2),
                                         ("IT-RANK-D1", "X-C", 50.0, 1)):
            for _ in range(times):
                n += 1
                may.append(rx(n, f"2026-05-{d:02d}", doc, drug, amount))
    produce(bs, "zhijian.prescriptions", [may], key=base_rx["patient_id"])
    patients = {}
    for i in range(200):
        pid = f"1101011990010{i:05d}"
        patients.setdefault(partition_for(pid, 4), pid)
    assert sorted(patients) == [0, 1, 2, 3]
    # a live prescription on every partition: the time passes May's end on each (a live event moves its partition's
    # clock at once, PartitionClock), however far the other tests have moved it already
    live = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
    for p, pid in patients.items():
        e = rx(1000 + p, "", "IT-RANK-D9", "X-A", 10.0, inst="IT-RANK-H2")
        e.update(patient_id=pid, event_time=live)
        produce(bs, "zhijian.prescriptions", [e], key=pid)
    for r in stewardship_reports():
        produce(bs, "zhijian.reports", [r.to_json()], key=r.key.decode())
    key = b"double_ranking:IT-RANK-H1:2026-05"
    [record] = [r for r in read_topic(bs, "zhijian.reports", lambda rs: any(r.key == key for r in rs), timeout=120)
                if r.key == key][:1]
    ranking = orjson.loads(record.value)
    assert ranking["period"] == "2026-05" and ranking["body"]["prescribing_days"] == 6
    assert [(d["drug"], d["amount"], d["prescribers"]) for d in ranking["body"]["ranking"]] == [
        ("X-A", 5400.0, [["IT-RANK-D1", 5400.0]]), ("X-B", 1200.0, [["IT-RANK-D2", 1200.0]]),
        ("X-C", 300.0, [["IT-RANK-D1", 300.0]])]
    assert worker.metric("zhijian_reports_total", kind="double_ranking") >= 1

    db, port, base, log, proc = console_for(bs, tmp_path, {"li": "analyst"})
    try:
        sign_in(browser, base, "li")  # in English
        browser.find_element(By.ID, "nav-reports").click()
        wait_for(lambda: browser.find_elements(By.ID, "months"))
        browser.get(base + "/reports?month=2026-10")
        cells = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#stewardship td.over"))
        assert [c.text for c in cells] == ["30.0 % ≤ 20 %"]
        assert cells[0].find_element(By.XPATH, "..").get_attribute("data-institution") == "H1"
        browser.get(base + "/reports?month=2026-05&institution=IT-RANK-H1")
        rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "section.ranking tr.drug"))
        assert [r.get_attribute("data-drug") for r in rows] == ["X-A", "X-B", "X-C"]
        assert "IT-RANK-D1 (5,400)" in rows[0].text and "900" in rows[0].text  # 5,400 over 6 prescribing days
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
