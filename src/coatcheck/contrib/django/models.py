"""No models: the sessions live in coatcheck's store, not in Django's database.

The module exists because Django sends ``post_migrate`` only to apps that have one, and that
signal is how ``manage.py migrate`` creates the store's tables (see :mod:`.apps`).
"""

__all__: list[str] = []
