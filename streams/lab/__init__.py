"""The lab tools 实验工具: evaluate (the simulated region scored through the real worker, and the kill and
scale harness), bench (throughput beside the raw consumer) and nab (the dynamics model on NAB's real series).

They drive the worker from outside — start it as a process, feed it, read its topics and metrics — and the
worker imports none of them (``tests/test_house.py``)."""
