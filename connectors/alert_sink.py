"""The alert printer: alerts as one line each on a terminal, and as JSON lines in a file."""
from __future__ import annotations

import re
import sys
from typing import IO, Any

import orjson

SEVERITY_MARK = {"low": "  low ", "medium": " MED  ", "high": " HIGH ", "critical": " CRIT "}
COLOURS = {"low": "\033[36m", "medium": "\033[33m", "high": "\033[31m", "critical": "\033[1;41;37m"}


#: Characters that must not reach a terminal from a record's text: C0/C1 controls (ESC starts terminal
#: commands) and the bidirectional overrides that make text read other than it is (U+202E …).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: Any) -> str:
    """Text safe for a console: controls and direction overrides shown as ``?``.

    >>> printable("fridge \x1b[2J F1 \u202eevil")
    'fridge ?[2J F1 ?evil'
    """
    return _UNPRINTABLE.sub("?", str(text))


def format_alert(a: dict[str, Any], colour: bool = False) -> str:
    """One line an operator reads at a glance: time, severity, detector, entity, reason (controls stripped)."""
    sev = a.get("severity", "?")
    mark = SEVERITY_MARK.get(sev, f" {sev:5}")
    if colour:
        mark = f"{COLOURS.get(sev, '')}{mark}\033[0m"
    status = " (closed)" if a.get("status") == "closed" else ""
    when = printable(a.get("event_time", ""))[:16].replace("T", " ")
    return f"{when} {mark} {printable(a.get('detector', '?')):28} {printable(a.get('reason', ''))}{status}"


class AlertPrinter:
    """Prints alerts and, if asked, appends them to a JSON-lines file."""

    def __init__(self, out: IO[str] = sys.stdout, jsonl: IO[bytes] | None = None) -> None:
        self.out = out
        self.colour = out.isatty()
        self.jsonl = jsonl
        self.count = 0

    def __call__(self, alert: dict[str, Any]) -> None:
        self.count += 1
        print(format_alert(alert, self.colour), file=self.out, flush=True)
        if self.jsonl is not None:
            self.jsonl.write(orjson.dumps(alert) + b"\n")
            self.jsonl.flush()

    def scenario(self, incident: dict[str, Any]) -> None:
        """A simulator's scenario starting, so a demo viewer sees the risk before its alerts.

        A patient is never named: the console is a log, and patient identifiers stay out of logs."""
        kind, ident = incident["entity"]["kind"], incident["entity"]["id"]
        who = "a patient" if kind == "patient" else f"{kind} {ident}"
        line = f"  ▸ {incident['start'][:16].replace('T', ' ')} scenario {incident['scenario']} on {who}"
        print(f"\033[2m{line}\033[0m" if self.colour else line, file=self.out, flush=True)
