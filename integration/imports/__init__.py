"""History import: CSV exports by a mapping and CRM backfills, stored as ordinary, already processed history."""
