"""Part of the sandbox for tests that read only some platforms.

`sandbox.launcher.start_sandbox` starts every server; HubSpot's builds its portal of ~25,000 records (~10 s of CPU)
before it answers. A test that reads no HubSpot table starts the others only, and says so by calling this.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sandbox.launcher import SERVER_FACTORIES, Sandbox
from sandbox.world import World


def _name(factory: Callable[[World], object]) -> str:
    """A factory's platform name without building its server: a class, or a class's `for_sandbox`."""
    owner = factory if isinstance(factory, type) else getattr(factory, "__self__", None)
    return str(getattr(owner, "name", ""))


@contextmanager
def start_servers(world: World, without: Sequence[str] = ("hubspot",)) -> Iterator[Sandbox]:
    """The launcher's servers but those named in `without` (their `name`), stopped when the block ends."""
    servers = []
    try:
        for factory in SERVER_FACTORIES:
            if _name(factory) in without:
                continue  # never built: building is the cost
            servers.append(factory(world))
            servers[-1].start()
        yield Sandbox(world, servers)
    finally:
        for server in reversed(servers):
            server.stop()
