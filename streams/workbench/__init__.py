"""The workbench 工作台: cases built from the alerts, verdicts, the learned priority, points, watch lists, the
institution risk score, and the console that serves them to analysts, operators and supervisors."""
