"""The quick start's demo: the seeded data set (``data``) and the runner (``runner``)."""
