"""One root exception; leaf exceptions say what is wrong and how to fix it."""


class AsbuiltError(Exception):
    """Root of every error asbuilt raises on purpose (bad configuration, broken invariant)."""


class ConfigError(AsbuiltError):
    """The configuration or the machine is not as asbuilt needs it; the message says the fix."""


class ServiceError(AsbuiltError):
    """A service of the local stack could not start or became unhealthy."""


class MigrationError(AsbuiltError):
    """A schema migration cannot be applied safely."""
