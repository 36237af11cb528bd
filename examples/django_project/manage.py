#!/usr/bin/env python
"""The example project's manage.py: ``python manage.py migrate`` (creates the users table and
the coatcheck session store's), ``createsuperuser``, ``runserver``, ``clearsessions``."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
