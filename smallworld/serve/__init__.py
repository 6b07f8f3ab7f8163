"""Serving the student: streaming CLI scoring (``score``); HTTP and Spark come on top of the same scorer."""
