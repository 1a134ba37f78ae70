"""Vaccine cold-chain detectors 疫苗冷链监测."""
