"""The pure part of zhijian: what is judged and how — no Kafka or Faust import anywhere below.

* :mod:`models.contracts` — the published record contracts (JSON Schemas), alerts, pseudonyms;
* :mod:`models.engine` — the detector contract and the keyed runtime that runs it (state, timers,
  watermarks, re-keying, the alert cap), and the conformance checks every detector passes;
* :mod:`models.rules` — the rules the supervision plans name, one module per rule, per stream.
"""
