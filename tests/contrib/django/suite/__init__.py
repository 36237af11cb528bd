"""What test_django_suite.py runs in a subprocess: Django's own session tests, on coatcheck."""
