"""Start every sandbox platform server against one shared world and hand back the connector settings.

Why a launcher: the pipeline reads its endpoints from ``MKPI_*`` environment variables, so a test, a demo
or ``python -m sandbox`` only needs ``Sandbox.env`` to point the real connectors at 127.0.0.1. Platforms
are a plain list of factories: a later server (Search Console, Google Ads over gRPC, HubSpot, Matomo) is
one more entry in ``SERVER_FACTORIES`` and one more ``env()`` implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from sandbox.ads_server import AdsServer
from sandbox.ga4_server import Ga4Server
from sandbox.gsc_server import GscServer
from sandbox.hubspot_server import HubSpotServer
from sandbox.linkedin_server import LinkedInServer
from sandbox.matomo_server import MatomoServer
from sandbox.meta_server import MetaServer
from sandbox.world import World


class PlatformServer(Protocol):
    """What the launcher needs from a server; HTTP servers get it from ``SandboxServer``."""

    name: str

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def env(self) -> dict[str, str]: ...


SERVER_FACTORIES: list[Callable[[World], PlatformServer]] = [
    Ga4Server,
    GscServer,
    MatomoServer.for_sandbox,  # a fresh random token_auth per start
    AdsServer.for_sandbox,  # gRPC; a fresh random developer token per start
    HubSpotServer.for_sandbox,  # a fresh random token; 190 requests/10 s and 10 searches/s
    MetaServer.for_sandbox,  # Graph API (Facebook Page, Instagram account); a fresh random token per start
    LinkedInServer.for_sandbox,  # Community Management API (two organizations); a fresh random token per start
]


class Sandbox:
    """Running servers plus the environment that points connectors at them."""

    def __init__(self, world: World, servers: list[PlatformServer]) -> None:
        self.world = world
        self.servers = servers
        self.env: dict[str, str] = {}
        for server in servers:
            self.env.update(server.env())

    def server(self, name: str) -> PlatformServer:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_sandbox(world: World | None = None, *, profile: str = "default") -> Sandbox:
    """Start all servers on free loopback ports; if one fails to start, stop those already running.

    Every server answers for every account of the world, and ``Sandbox.env`` lists them all
    (``MKPI_GA4_PROPERTY_IDS``, ``MKPI_SEARCH_CONSOLE_SITES``, ``MKPI_GOOGLE_ADS_CUSTOMER_IDS``,
    ``MKPI_MATOMO_SITE_IDS``): with ``profile="many"`` (when no world is given) that is 50 GA4 properties,
    20 Search Console sites, 20 Google Ads customers and 10 Matomo sites.
    """
    world = world if world is not None else World(profile=profile)
    servers: list[PlatformServer] = []
    try:
        for factory in SERVER_FACTORIES:
            server = factory(world)
            server.start()
            servers.append(server)
    except BaseException:
        for server in reversed(servers):
            server.stop()
        raise
    return Sandbox(world, servers)
