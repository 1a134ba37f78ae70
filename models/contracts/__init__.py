"""The contracts 数据契约: the input records' JSON Schemas and their checks, the alert record, pseudonyms."""
