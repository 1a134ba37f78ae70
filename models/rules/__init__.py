"""The rules 规则: one detector per module, per stream (prescription, claims, waste, coldchain), the online
models they share (anomaly) and the registry that finds them. A new rule is a new module here and its test."""
