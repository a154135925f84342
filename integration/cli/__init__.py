"""The ``leadloop`` command (``main``)."""
