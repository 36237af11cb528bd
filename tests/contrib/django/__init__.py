"""Tests of coatcheck.contrib.django (the session engine) and its example project."""
