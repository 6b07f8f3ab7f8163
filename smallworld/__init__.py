"""smallworld: use an LLM at training time to build small, fast security classifiers."""

__version__ = "0.1.0"
