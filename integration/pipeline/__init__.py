"""Processing: the coalescing queue, every RQ job and cron entry, and one lead's transaction.

- ``queue``       one pending rescore per lead, one pending flush per CRM (on RQ)
- ``jobs``        every RQ job and the cron table
- ``processing``  one lead's transaction: events, fields, score, lifecycle, CRM writes
- ``handoff``     owner assignment, the rep's task and the SLA schedule at hand-off
- ``outbox``      the CRM writes: what to queue, and sending them in batches
- ``hydrate``     reading the fields a webhook did not carry from the CRM
"""
