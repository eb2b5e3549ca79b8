"""The stream worker: the process a stream's Job runs (``smart-resume worker``)."""
