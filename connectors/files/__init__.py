"""Files in: JSON-lines and CSV replay through column mappings, and logger exports (Berlinger Fridge-tag)."""
