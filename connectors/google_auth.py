"""Google credentials for GA4 and Search Console, resolved the same way for both, without network.

Order: the JSON key named by GOOGLE_APPLICATION_CREDENTIALS (service account or authorized user),
then application default credentials from `gcloud auth application-default login`, then anonymous
credentials when the endpoint is overridden (the local sandbox). The metadata server is never probed,
so a missing credential is one clear sentence, not a network timeout.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from connectors.errors import ConfigError
from connectors.http import is_loopback


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
        f"access to the {platform} accounts (or run `gcloud auth application-default login`), "
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
