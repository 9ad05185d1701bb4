"""A module that raises while it is imported."""


def _configure():
    raise RuntimeError("cli_raises refuses to import")


_configure()
