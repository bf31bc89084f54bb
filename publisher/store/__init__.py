"""State in SQLite: the database itself (`db`) and one module per kind of record."""
