"""The store: tables (``models``), migrations (``migrate``), storing events and finding leads."""
