"""How the official Google Ads client reaches its endpoint: the one place the API version is pinned.

Why a module of its own: importing google-ads costs ~2-3 s, so nothing else imports it at module level;
and reaching a loopback endpoint (the sandbox) needs gRPC *local* channel credentials instead of TLS.
`GoogleAdsClient.get_service` always builds a TLS channel, and the usual workaround patches
`google.api_core.grpc_helpers.create_channel` for the whole process. Instead, for a loopback endpoint
this module builds the service exactly as `get_service` does (same transport class, the library's own
metadata, logging and exception interceptors, so developer-token, login-customer-id and authorization
travel and GoogleAdsException is raised as in production) with only the channel credentials swapped.
Plain text is never used, and a non-loopback endpoint always goes through `get_service` and TLS.
"""

from typing import Any

from connectors.http import is_loopback

# The newest API version the installed google-ads supports; upgrading is this one line (and its test).
API_VERSION = "v26"
DEFAULT_ENDPOINT = "googleads.googleapis.com"


def split_host_port(endpoint: str) -> tuple[str, int | None]:
    """`host:port` (the MKPI_GOOGLE_ADS_ENDPOINT form; a scheme is tolerated and dropped)."""
    value = endpoint.split("://", 1)[-1].rstrip("/")
    if value.startswith("["):  # [::1]:port
        host, _, port = value[1:].partition("]:")
        return host, int(port) if port else None
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, None
    return host, int(port)


def google_ads_service(
    *,
    credentials: Any,
    developer_token: str,
    login_customer_id: str | None = None,
    endpoint: str | None = None,
    version: str = API_VERSION,
) -> Any:
    """A GoogleAdsService client for `version`, through TLS, or gRPC local credentials on loopback."""
    import grpc
    from google.ads.googleads.client import GoogleAdsClient

    target = endpoint.split("://", 1)[-1].rstrip("/") if endpoint else None
    host = split_host_port(target)[0] if target else None
    if not target or not is_loopback(host):
        client = GoogleAdsClient(credentials=credentials, developer_token=developer_token, endpoint=target,
                                 login_customer_id=login_customer_id, version=version, use_proto_plus=True)
        return client.get_service("GoogleAdsService", version=version)

    import importlib
    import logging

    from google.ads.googleads import interceptors

    module = importlib.import_module(f"google.ads.googleads.{version}.services.services.google_ads_service")
    service_client_class = module.GoogleAdsServiceClient
    transport_class = service_client_class.get_transport_class()
    channel = transport_class.create_channel(
        host=target,
        credentials=credentials,
        options=[("grpc.max_metadata_size", 16 * 1024 * 1024), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        ssl_credentials=grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
    )
    channel = grpc.intercept_channel(
        channel,
        interceptors.MetadataInterceptor(developer_token, login_customer_id, None),
        interceptors.LoggingInterceptor(logging.getLogger("google.ads.googleads.client"), version, target),
        interceptors.ExceptionInterceptor(version, use_proto_plus=True),
    )
    return service_client_class(transport=transport_class(channel=channel))
