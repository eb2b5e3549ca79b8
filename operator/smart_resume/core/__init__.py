"""The functional core: pure decisions (planning, resume, status, record mapping). No I/O here."""
