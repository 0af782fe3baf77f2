"""The Meta sandbox and connectors held to the official SDK's own description of Graph API objects (facebook-business,
facebook_business/adobjects: InsightsResult, InstagramInsightsResult, PagePost, IGMedia): every field the sandbox
answers and every field, period and media metric the connectors ask for is one the SDK of the pinned version knows.

(The SDK's Instagram metric enum lists media metrics only; the account metrics the connector reads are checked
against Meta's documentation, cited in connectors/instagram.py.)"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from facebook_business.adobjects.igmedia import IGMedia
from facebook_business.adobjects.insightsresult import InsightsResult
from facebook_business.adobjects.instagraminsightsresult import InstagramInsightsResult
from facebook_business.adobjects.pagepost import PagePost
from facebook_business.apiconfig import ads_api_config

from connectors import facebook, instagram
from connectors.batches import Window
from connectors.meta_graph import GRAPH_API_VERSION
from connectors.settings import load_settings
from sandbox.meta_server import MetaServer
from sandbox.world import World

TODAY = date(2026, 3, 10)


def names(enum: type) -> set[str]:
    return {v for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, str)}


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """Every answer body the sandbox gave a Facebook and an Instagram read, by path."""
    path = tmp_path_factory.mktemp("meta") / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    bodies: dict[str, list[dict]] = {}
    with MetaServer(World(today=TODAY)) as server:
        settings = load_settings(path, environ=server.env())
        for module in (facebook, instagram):
            made = module.connect(settings)
            get = made.client().get

            def recording(path_parts, params, *, account, what, get=get):
                body = get(path_parts, params, account=account, what=what)
                bodies.setdefault("/".join(path_parts), []).append(body)
                return body

            made.client().get = recording
            list(made.fetch_all(Window(TODAY - timedelta(days=6), TODAY)))
    return bodies


def test_the_pinned_version_is_the_sdks():
    assert GRAPH_API_VERSION == ads_api_config["API_VERSION"]


def test_insights_answers_use_the_sdks_fields_and_periods(answers):
    page = [item for path, bodies in answers.items() if path.endswith("insights") and not path.startswith("1784")
            for body in bodies for item in body["data"]]
    ig = [item for path, bodies in answers.items() if path.startswith("17841400000000001/insights")
          for body in bodies for item in body["data"]]
    assert page and ig
    assert all(set(item) <= names(InsightsResult.Field) for item in page)
    assert all(item["period"] in names(InsightsResult.Period) for item in page)
    assert all(set(item) <= names(InstagramInsightsResult.Field) for item in ig)
    assert all(item["period"] in names(InstagramInsightsResult.Period) for item in ig)


def test_edges_answer_the_sdks_object_fields(answers):
    posts = [item for path, bodies in answers.items() if path.endswith("published_posts") for body in bodies
             for item in body["data"]]
    media = [item for path, bodies in answers.items() if path.endswith(("/media", "/stories")) for body in bodies
             for item in body["data"]]
    assert posts and media
    assert all(set(item) <= names(PagePost.Field) for item in posts)
    assert all(set(item) <= names(IGMedia.Field) for item in media)


def test_the_connectors_ask_for_fields_and_media_metrics_the_sdk_knows():
    assert set(facebook.POST_FIELDS.split(",")) <= names(PagePost.Field)
    assert set(instagram.MEDIA_FIELDS.split(",")) <= names(IGMedia.Field)
    for metrics in instagram.MEDIA_METRICS.values():
        assert set(metrics) <= names(InstagramInsightsResult.Metric)
    assert {"time_series", "total_value"} <= names(InstagramInsightsResult.MetricType)
    assert set(facebook.PERIODS) | {"day"} <= names(InsightsResult.Period)
