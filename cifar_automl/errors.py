"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input: a wrong path, an unknown name, a bad flag value, an unusable storage."""


class DataError(UserError):
    """A data set that cannot be found, read or decoded."""


class SpaceError(UserError):
    """A search space that is unknown or malformed."""


class StudyError(UserError):
    """A study storage that cannot be opened, or a study that does not match the request."""


class SearchError(Exception):
    """A search that cannot go on (a worker stopped on an error, the storage went away): the CLI says
    it in one line, with exit code 1; `details` (a worker's traceback) is shown with --debug."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
