"""A toy sixth platform, added through the registry alone (issue #20's "done when"): a connector module
(`connector.py`), a tiny server on 127.0.0.1 (`server.py`), a registry entry (made by tests/test_toy_source.py at
test time) and one SQL file (`toy_daily.sql`). It is not a real platform: its wire format is invented for the test."""
