"""The pieces of ``benchmarks/race.py``: ``common`` (servers, the first visit, clean-up),
``clients`` (coatcheck's and the in-process WSGI/ASGI callers), ``peers`` (the peer libraries'
clients), ``rows`` (the table's rows) and ``runner`` (one trial, threads or processes)."""
