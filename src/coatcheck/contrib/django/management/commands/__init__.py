"""Django management commands of coatcheck's session engine."""
