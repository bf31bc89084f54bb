"""Test helpers shared by several test modules (SMTP servers on 127.0.0.1, …)."""
