"""User-facing error types: every message names the file/plugin and the problem."""


class CmcgnsError(Exception):
    """Base class for errors that the CLI reports without a traceback."""


class ConfigError(CmcgnsError):
    pass


class PluginError(CmcgnsError):
    pass


class DataError(CmcgnsError):
    pass


class TrainingError(CmcgnsError):
    pass
