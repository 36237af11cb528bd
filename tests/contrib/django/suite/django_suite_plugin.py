"""A pytest plugin for Django's own session tests (run by test_django_suite.py in a
subprocess): Django is configured with coatcheck's engine on the store in
``$COATCHECK_DJANGO_STORE``, and the fetched ``sessions_tests`` package as an app.

Loaded with ``-p django_suite_plugin``, this directory and the fetched Django ``tests`` folder
on ``PYTHONPATH``. At start-up it writes the names of every test of the two Django classes the
run subclasses (``$COATCHECK_DJANGO_EXPECTED``), so the caller checks that each one ran, whatever
Django adds to them in a later release.
"""

from __future__ import annotations

import json
import os
import unittest

import django
import pytest
from django.conf import settings


def pytest_configure(config: pytest.Config) -> None:
    settings.configure(
        SECRET_KEY="django-suite secret, not a real one",
        SESSION_ENGINE="coatcheck.contrib.django",
        COATCHECK={"STORE": os.environ["COATCHECK_DJANGO_STORE"]},
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "coatcheck.contrib.django",
            # Django's tests import their own models module (a custom db-session model).
            "sessions_tests",
        ],
        # Django's TestCase (SessionMiddlewareTests' base) opens a transaction per test; no
        # test this run keeps reads or writes a table.
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    from coatcheck.contrib.django.apps import create_tables

    create_tables()
    import sessions_tests.tests as django_tests

    loader = unittest.TestLoader()
    expected = {
        "SessionTestsMixin": list(loader.getTestCaseNames(django_tests.SessionTestsMixin)),
        "SessionMiddlewareTests": list(
            loader.getTestCaseNames(django_tests.SessionMiddlewareTests)
        ),
    }
    with open(os.environ["COATCHECK_DJANGO_EXPECTED"], "w") as file:
        json.dump(expected, file)
