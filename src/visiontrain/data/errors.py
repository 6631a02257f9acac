"""Errors of the data room: each message names the file or value and what to do."""


class DataError(ValueError):
    """A dataset that cannot be used as given (missing folder, empty class, bad CSV, ...)."""


class ImageError(ValueError):
    """One file that is not a usable image; the reason is meant for the user."""
