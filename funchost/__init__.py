"""funchost: a local Azure Functions host for Python v2 apps (``funcpy start``)."""
