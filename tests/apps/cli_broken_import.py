"""A module whose own import fails: the CLI must say so in one line."""

import nosuch_dependency_for_cli_test  # noqa: F401

app = None
