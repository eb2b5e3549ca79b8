"""The operator: kopf handlers (``handlers``) and what they do to a run (``lifecycle``)."""
