"""Errors raised by the golden model."""


class ConfigError(ValueError):
    """An invalid configuration: the message names the parameter, the value and the limit."""


class IdentityError(AssertionError):
    """A physical identity (first law, counter consistency) does not hold: a bug."""


def require(condition, parameter, value, limit):
    """Raise ConfigError("<parameter> = <value>: <limit>") unless condition holds."""
    if not condition:
        raise ConfigError(f"{parameter} = {value!r}: {limit}")
