"""``from smallworld.spark import score_dataframe``: score a Spark DataFrame (see :mod:`smallworld.serve.spark`)."""

from .serve.spark import score_dataframe

__all__ = ["score_dataframe"]
