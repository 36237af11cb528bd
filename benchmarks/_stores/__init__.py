"""The pieces of ``benchmarks/stores.py``: each store against its raw driver, both flavours.

``workload`` (payload, clock, keys), ``servers`` (where the servers are), ``floors`` (the raw
drivers doing the store's work), ``roundtrips`` (counting on the wire), ``benches`` (a store,
its floor and their counted twins, per flavour) and ``measures`` (the operations, timed and
counted once for both flavours, with :mod:`_flavours`).
"""
