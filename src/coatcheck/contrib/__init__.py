"""Framework integrations: each ``coatcheck.contrib.<framework>`` module imports its framework,
so install the matching extra (``pip install "coatcheck[starlette]"``, ``[fastapi]``, ...).

The core (:mod:`coatcheck`, :mod:`coatcheck.wsgi`, :mod:`coatcheck.asgi`) needs only the
standard library; nothing here is imported by it.
"""

# A package of modules only: each integration is imported by its own name.
__all__: list[str] = []
