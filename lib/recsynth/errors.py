"""The project's own exception classes, so callers and the CLI can tell user errors apart."""


class RecsynthError(Exception):
    """Base class: an error the user can act on; the CLI prints it without a traceback."""


class ConfigError(RecsynthError):
    """The configuration is invalid (file, key and expectation are in the message)."""


class SourceError(RecsynthError):
    """A raw source cannot be read as configured (missing files, unreadable format)."""


class LakeError(RecsynthError):
    """A lake table is missing or cannot be written."""


class JobFailed(RecsynthError):
    """A job failed; the tables it touched were restored to their previous versions."""


class RecommenderError(RecsynthError):
    """A recommender input or parameter is unusable (the message names the frame, column or value)."""


class GateFailed(RecsynthError):
    """A quality or privacy gate of synthetic data failed: nothing was published."""


class ServiceError(RecsynthError):
    """A background service (metastore, SQL server, standalone cluster) would not start or answer."""
