"""HubSpot's latency bound (bench/bench_latency.py, issue #21 target 6): where the longest chain and the rolling quota
meet, the bound is a schedule that respects both, not the larger of the two taken apart. Expected values by hand."""

import pytest

from bench import backfill as bf
from bench.bench_latency import Chain, hubspot_chains, platform_bound, rolling_schedule


def test_a_chain_alone_takes_its_length_in_latencies():
    assert rolling_schedule({"list": Chain(5)}, 1.0, 100, 10.0) == pytest.approx(5.0)


def test_a_chain_that_uses_the_whole_quota_pushes_every_other_request_after_it():
    # 10 a second allowed, 10 a second sent by the chain (0.0 .. 2.9): a request at 0 would make the window
    # (-0.1, 0.9] hold 11. The window (2.0, 3.0] holds the chain's 2.1 .. 2.9: one place at 3.0, then one each 0.1 s.
    chains = {"contacts": Chain(30), **{f"single {i}": Chain(1) for i in range(9)}}
    assert rolling_schedule(chains, 0.1, 10, 1.0) == pytest.approx(3.9)


def test_a_request_waiting_for_a_deals_page_starts_after_its_answer():
    # deals pages answered at 1, 2, 3; the association batch waits for page 2 (answered at 2), answered at 3
    chains = {"deals": Chain(3), "associations": Chain(1, "deals", 2)}
    assert rolling_schedule(chains, 1.0, 100, 10.0) == pytest.approx(3.0)
    assert rolling_schedule({"deals": Chain(3), "associations": Chain(2, "deals", 3)}, 1.0, 100, 10.0) == 5.0


def test_hubspot_units_become_chains_of_their_real_page_sizes():
    run = bf.SourceRun("hubspot", units={"contacts list portal": 19_970, "deals list portal": 3_261,
                                         "deal associations contacts portal": 3_261, "owners portal": 5,
                                         "email histogram 9 portal": 700, "account details portal": 1})
    chains = hubspot_chains(run)
    assert chains["contacts list portal"] == Chain(200) and chains["deals list portal"] == Chain(33)
    # 1,000 deals per batch read: the 4th batch (deals 3,001 .. 3,261) waits for the deals' 33rd page
    assert [chains[f"deal associations contacts portal {i}"] for i in range(4)] == [
        Chain(1, "deals list portal", 10), Chain(1, "deals list portal", 20), Chain(1, "deals list portal", 30),
        Chain(1, "deals list portal", 33)]
    assert chains["email histogram 9 portal"] == Chain(1) and chains["owners portal"] == Chain(1)


def test_hubspot_at_100_ms_and_100_requests_per_10_s_is_bound_by_the_schedule():
    # 200 contacts pages send 10 a second, the whole quota: the 40 other requests cost 0.1 s each on top
    units = {"contacts list portal": 19_970, "deals list portal": 3_000, **{f"x{i} properties portal": 0
                                                                           for i in range(10)}}
    run = bf.SourceRun("hubspot", units=units, minimum=240)
    bound = platform_bound(run, 0.1, 100)
    assert bound.chain == pytest.approx(20.0) and bound.quota == pytest.approx(20.1)
    assert bound.schedule == pytest.approx(24.0) and bound.binding == "schedule"
    # at 190 per 10 s the chain leaves 90 places a window: the others go beside it
    assert platform_bound(run, 0.1, 190).seconds == pytest.approx(20.0)
