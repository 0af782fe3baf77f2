"""Google credentials for GA4 and Search Console, resolved the same way for both, without network.

Order: the JSON key named by GOOGLE_APPLICATION_CREDENTIALS (service account or authorized user),
then application default credentials from `gcloud auth application-default login`, then anonymous
credentials when the endpoint is overridden (the local sandbox). The metadata server is never probed,
so a missing credential is one clear sentence, not a network timeout.

Scopes: a service-account key is asked for the connector's scope on every token. User credentials (an
authorized-user file, which `gcloud auth application-default login` writes) keep the scopes they were created
with and ignore the ones asked here (googleanalytics/google-analytics-mcp issue #187), and gcloud's default set
(openid, userinfo.email, cloud-platform, sqlservice.login) has neither analytics.readonly nor webmasters.readonly:
Google then refuses every request with 403 "Request had insufficient authentication scopes." and an ErrorInfo
reason ACCESS_TOKEN_SCOPE_INSUFFICIENT. Such credentials must be created with `--scopes`, which must include
cloud-platform, and since 23 June 2025 with your own OAuth client (`--client-id-file`) for scopes outside Google
Cloud (https://cloud.google.com/sdk/gcloud/reference/auth/application-default/login; the command in
googleanalytics/google-analytics-mcp README.md; Google's notice quoted in gcpug/nouhau issue #124).
`insufficient_scopes` recognises that refusal and `adc_login_command` prints the command that fixes it.
"""

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from connectors.errors import ConfigError
from connectors.http import is_loopback

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# google.rpc.ErrorInfo.reason of a 403 for a token without the method's scope (e.g. PipedreamHQ/pipedream issue
# #15060 for GA4 runReport; Automattic/newspack-plugin PR #4657 for the v3-style envelope with "errors").
SCOPE_INSUFFICIENT_REASON = "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
SCOPE_INSUFFICIENT_MESSAGE = "insufficient authentication scopes"
# RFC 6750 section 3.1: WWW-Authenticate: Bearer realm="...", error="insufficient_scope", scope="s1 s2"
_WWW_SCOPE = re.compile(r'scope="([^"]*)"')


def adc_login_command(scopes: Sequence[str]) -> str:
    """The gcloud command that writes user credentials able to read with these scopes (cloud-platform added, as
    gcloud requires it; your own OAuth client, as Google requires for scopes outside Google Cloud)."""
    wanted = [*scopes, *([] if CLOUD_PLATFORM_SCOPE in scopes else [CLOUD_PLATFORM_SCOPE])]
    return f"gcloud auth application-default login --client-id-file=CLIENT_SECRET.json --scopes={','.join(wanted)}"


def _error_reasons(exc: BaseException) -> list[str]:
    """The ErrorInfo reasons of a Google error: google-api-core's `reason`, googleapiclient's `error_details`."""
    reasons = [str(exc.reason)] if isinstance(getattr(exc, "reason", None), str) else []
    details = getattr(exc, "error_details", None) or getattr(exc, "details", None) or []
    if isinstance(details, list):
        reasons += [str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")]
    return reasons


def _www_authenticate(exc: BaseException) -> str:
    """The WWW-Authenticate header of the answer behind a Google error, or ""."""
    response = getattr(exc, "response", None)  # google-api-core: the requests.Response
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "resp", None)  # googleapiclient: httplib2.Response, a dict of lower-case headers
    if headers is None or not hasattr(headers, "get"):
        return ""
    return str(headers.get("www-authenticate") or headers.get("WWW-Authenticate") or "")


def insufficient_scopes(exc: BaseException) -> tuple[str, ...] | None:
    """When Google refused because the access token lacks the method's scope: the scopes Google says it accepts
    (from WWW-Authenticate, empty when it names none). None for any other error, so a missing scope is told apart
    from a missing permission on the property (both are 403 PERMISSION_DENIED)."""
    header = _www_authenticate(exc)
    refused = (SCOPE_INSUFFICIENT_REASON in _error_reasons(exc) or "insufficient_scope" in header
               or SCOPE_INSUFFICIENT_MESSAGE in str(getattr(exc, "message", "") or exc).lower())
    if not refused:
        return None
    match = _WWW_SCOPE.search(header)
    return tuple(match.group(1).split()) if match else ()


def scope_advice(platform: str, scopes: Sequence[str], accepted: Sequence[str] = ()) -> str:
    """What `mkpi doctor` says when Google refused for a missing scope: which scope, and the command that adds it."""
    needed = ", ".join(scopes)
    also = [s for s in accepted if s not in scopes]
    alternative = f" (or {', '.join(also)})" if also else ""
    return (f"the credentials lack the OAuth scope {needed}{alternative} that {platform} needs; user credentials keep "
            f"the scopes they were created with: run `{adc_login_command(scopes)}` (an OAuth client of type Desktop "
            "app, Google Cloud console > APIs & Services > Credentials), or set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key")


def adc_file() -> Path:
    config_dir = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    return Path(config_dir) / "application_default_credentials.json"


def resolve_credentials(credentials_file: str | None, endpoint: str | None, scopes: tuple[str, ...],
                        platform: str, endpoint_variable: str) -> Any:
    """Credentials for a Google API client; raises ConfigError naming what to set."""
    import google.auth
    import google.auth.exceptions
    from google.auth.credentials import AnonymousCredentials

    if credentials_file:
        path = Path(credentials_file)
        if not path.is_file():
            raise ConfigError(
                f"GOOGLE_APPLICATION_CREDENTIALS points to {path}, which is not a file: set it to the "
                f"service-account JSON key that has read access to the {platform} accounts"
            )
        try:
            credentials, _ = google.auth.load_credentials_from_file(str(path), scopes=list(scopes))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(f"GOOGLE_APPLICATION_CREDENTIALS file {path} is not a usable key: {exc}") from exc
        return credentials
    if adc_file().is_file():
        credentials, _ = google.auth.load_credentials_from_file(str(adc_file()), scopes=list(scopes))
        return credentials
    if endpoint:
        return AnonymousCredentials()
    raise ConfigError(
        f"No {platform} credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON key with "
        f"access to the {platform} accounts (or run `{adc_login_command(scopes)}`), "
        f"or set {endpoint_variable} to a local sandbox (`python -m sandbox`)"
    )


def checked_endpoint(endpoint: str, credentials: Any, endpoint_variable: str) -> str:
    """An overridden endpoint with a scheme; plain HTTP only to loopback unless credentials are anonymous."""
    from google.auth.credentials import AnonymousCredentials

    url = endpoint.rstrip("/")
    if "://" not in url:
        url = "https://" + url
    parsed = urlparse(url)
    if parsed.scheme == "http" and not is_loopback(parsed.hostname) and not isinstance(
        credentials, AnonymousCredentials
    ):
        raise ConfigError(
            f"{endpoint_variable} {parsed.scheme}://{parsed.hostname}:{parsed.port} is plain HTTP on a "
            "non-loopback host: credentials are only sent over HTTPS (or to 127.0.0.1)"
        )
    return url
