"""The engine's runtime: everything around the pure engine that touches the world.

``service`` runs one shard's engine between the bus and its event log; ``runner`` is the
in-process single writer (the embedded server, the benchmarks); ``eventlog`` owns the
event log's format (what the service writes, what the worker and the servers read);
``recovery`` rebuilds an engine from its snapshot file and the log; ``journal`` keeps the
embedded exchange's event stream on disk; ``compiled`` chooses the compiled or the
pure-Python engine.

This package imports nothing on its own: ``pmarket`` imports ``compiled`` before any
engine module, so the package must stay light.
"""
