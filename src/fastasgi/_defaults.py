"""The default of every setting by its upper-case name: ``_defaults.PORT`` is 8000.

The values are the settings table's (``fastasgi._settings``), where each is declared once;
this module is the name the compiled core (its ``ServerContext`` keyword defaults) and a few
modules read them by. It imports only the table, which imports only the standard library, so
anything may import it, the core included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastasgi._settings import (
    DEFAULTS,
    FORWARDED_ALLOW_IPS,
    HEADER_MAPS,
    LOG_FORMATS,
    PROXY_PROTOCOLS,
)

__all__ = ["FORWARDED_ALLOW_IPS", "HEADER_MAPS", "LOG_FORMATS", "PROXY_PROTOCOLS"]

# HOST, PORT, TIMEOUT_REQUEST, ...: one name per entry of the table, so that a new setting's
# default is here without a line of its own. FORWARDED_ALLOW_IPS stays the fallback imported
# above (what None means for --forwarded-allow-ips), as it always was here.
_GENERATED = {name.upper(): value for name, value in DEFAULTS.items() if name.upper() not in __all__}
globals().update(_GENERATED)
__all__ += list(_GENERATED)

if TYPE_CHECKING:
    # the names above are made at import time; to mypy every one of them is Any
    def __getattr__(name: str) -> Any: ...
