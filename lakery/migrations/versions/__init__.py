"""Migration scripts, oldest first: ``NNNN_<what>.py``, revision ids ``"NNNN"``."""
