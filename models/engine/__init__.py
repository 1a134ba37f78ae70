"""The engine's pure core 引擎: the detector contract, the keyed runtime (state, event-time timers, watermark,
expiry, snapshots), re-keying by another entity, the alert cap, and the conformance checks. Its Kafka adapter is
:mod:`streams.worker`."""
