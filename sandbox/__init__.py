"""Offline emulators of the five marketing platforms, all observing one seeded synthetic shop.

``sandbox.world.World`` is the shop; ``sandbox.launcher.start_sandbox`` starts the platform servers on
127.0.0.1 and returns the ``MKPI_*`` environment the connectors read. Nothing here touches the network
beyond loopback, so tests and demos run the real client libraries without credentials.
"""

from sandbox.launcher import Sandbox, start_sandbox
from sandbox.world import World

__all__ = ["Sandbox", "World", "start_sandbox"]
