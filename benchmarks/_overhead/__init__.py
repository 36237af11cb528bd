"""The pieces of ``benchmarks/overhead.py``: ``serving`` (the app and the server's side, by
hand), ``timing`` (things timed in turns, either flavour) and ``peers`` (the floor and the peer
libraries doing the same request)."""
