"""The per-client tasks (lead scoring, post harvesting, post scoring) and their registry."""
