"""leadloop's integration layer: everything between the CRMs' webhooks and their APIs.

One room per concern, each a subpackage (the import contracts in ``pyproject.toml`` keep them
layered, top to bottom):

- ``cli``       the ``leadloop`` command
- ``demo``      the quick start's demo: data set and runner
- ``web``       the Flask app: webhook receiver, generic intake, health
- ``reports``   what the stored history says (rules compare)
- ``pipeline``  the queue, its jobs, and one lead's processing transaction
- ``services``  the process services (database, Redis, queue, rules, clock, CRM clients)
- ``store``     tables, migrations, storing events, finding leads
- ``config``, ``clock``, ``embedded_redis``: settings, the time, the embedded Redis
"""
