"""Errors a user can hit; the CLI prints them as one line with the fix, never a traceback."""


class ZhijianError(Exception):
    """An error with a message that names the cause and the fix."""


class ConfigError(ZhijianError):
    pass


class BrokerError(ZhijianError):
    pass
