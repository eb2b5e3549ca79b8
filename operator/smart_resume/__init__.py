"""smart-resume-operator: resumable, lock-protected lead-processing runs on Kubernetes."""

__version__ = "0.1.0"
