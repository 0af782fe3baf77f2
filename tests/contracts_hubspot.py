"""HubSpot's public API specification, the part the connector uses: facts for tests/test_contracts_hubspot.py.

Extracted from HubSpot/HubSpot-public-api-spec-collection at commit 99893791383254f52aa07662baeb98aad65cc710
(the OpenAPI 3.0.1 files named in "sources"): for each operation the connector calls, its parameters, request body and
responses, and every component schema reachable from them (renamed "<file>.<Schema>" so that the files' same-named
schemas do not clash; the "default" response is HubSpot's Error). Descriptions and examples are dropped; everything
else is as HubSpot publishes it. To refresh: take the same operations from a newer commit of the collection.
"""

import json
from pathlib import Path
from typing import Any

SPEC_REPOSITORY = "HubSpot/HubSpot-public-api-spec-collection"
SPEC_COMMIT = "99893791383254f52aa07662baeb98aad65cc710"

# the extract itself, as JSON (tests/samples/hubspot/api_spec_subset.json)
_FACTS = (Path(__file__).parent / "samples" / "hubspot" / "api_spec_subset.json").read_text(encoding="utf-8")

FACTS: dict[str, Any] = json.loads(_FACTS)
SOURCES: dict[str, str] = FACTS["sources"]  # file name -> path in the repository
OPERATIONS: list[dict[str, Any]] = FACTS["operations"]
SCHEMAS: dict[str, Any] = FACTS["schemas"]
