"""Errors a user can act on. The CLI prints them as one clear line, never a traceback."""


class SmallworldError(Exception):
    """Base class: a problem with the user's input, configuration or environment."""


class DataError(SmallworldError):
    """An input file is malformed; the message names the file and line."""


class ModelFileError(SmallworldError):
    """A model file is malformed, truncated, oversized or from an unknown format version."""


class TeacherError(SmallworldError):
    """The teacher could not answer (after retries), or answered something unusable."""
