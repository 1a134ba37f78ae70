"""Prescription detectors 处方监测 (超量, 超常)."""
