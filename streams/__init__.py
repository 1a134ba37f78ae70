"""The programs that run on the topics: the worker (:mod:`streams.worker`, the engine on Kafka through Faust),
the workbench (:mod:`streams.workbench`), the lab (:mod:`streams.lab`) and the ``zhijian`` command line that
starts them (:mod:`streams.cli`)."""
