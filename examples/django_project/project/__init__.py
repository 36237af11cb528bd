"""The example project: django.contrib.auth log in and log out on coatcheck sessions."""
