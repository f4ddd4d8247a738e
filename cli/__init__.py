"""The ``fulfill`` operator command line."""
