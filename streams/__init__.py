"""The Faust worker, its ingestion pipeline and the `zhijian` command line."""
