"""What the stored history says: rules compare (and the reports to come)."""
