"""``python -m durable_mgmt.cli …``: the durable commands without the rest of ``funcpy``."""

from . import durable

if __name__ == "__main__":
    durable(prog_name="funcpy durable")
