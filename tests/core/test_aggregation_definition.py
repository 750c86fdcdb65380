"""AggregatedView / Aggregation definitions: validation, registry round trip, plan's breaking changes."""

from datetime import timedelta

import pytest

import skewless as sk
from skewless.aggregation.definition import tile_of, window_start_us
from skewless.errors import DefinitionError

H, D = timedelta(hours=1), timedelta(days=1)
card = sk.Entity("card", ["card_id"], dtype=sk.Int64)
SCHEMA = [sk.Field("amount", sk.Float64), sk.Field("qty", sk.Int64), sk.Field("merchant", sk.String),
          sk.Field("txn_id", sk.String), sk.Field("online", sk.Bool)]


def view(aggs=None, hop=H, event_id="txn_id", name="txn"):
    aggs = aggs or [sk.Aggregation("amount", "sum", 7 * D), sk.Aggregation(None, "count", H),
                    sk.Aggregation("amount", "last_k(3)", D), sk.Aggregation("qty", "sum", D)]
    return sk.AggregatedView(name, [card], SCHEMA, aggs, hop=hop, event_id=event_id)


def test_outputs_names_and_types():
    v = view()
    assert v.feature_names == ["amount_sum_7d", "count_1h", "amount_last_3_1d", "qty_sum_1d"]
    assert [f.dtype for f in v.features] == [sk.Float64, sk.Int64, sk.Float64, sk.Int64]
    # the history stores the event columns, not the outputs
    assert v.stored_names == ["amount", "qty", "merchant", "txn_id", "online"]
    assert v.join_keys == ["card_id"] and v.hop_us == 3_600_000_000 and v.longest_window_us == 7 * 86_400_000_000


def test_registry_round_trip_keeps_the_kind():
    v = view()
    back = sk.FeatureView.from_dict(v.to_dict())
    assert isinstance(back, sk.AggregatedView) and back == v and back.aggregations == v.aggregations
    plain = sk.FeatureView("p", [card], [sk.Field("x", sk.Int64)])
    assert type(sk.FeatureView.from_dict(plain.to_dict())) is sk.FeatureView


@pytest.mark.parametrize("make, message", [
    (lambda: sk.Aggregation("amount", "median", D), "unknown aggregation function 'median'"),
    (lambda: sk.Aggregation("amount", "last_k", D), "positive integer k"),
    (lambda: sk.Aggregation("amount", "last_k(0)", D), "positive integer k"),
    (lambda: sk.Aggregation("amount", "sum", D, k=2), "takes no k"),
    (lambda: sk.Aggregation("amount", "sum", timedelta(0)), "must be positive"),
    (lambda: sk.Aggregation("amount", "sum", 1), "must be a timedelta"),
    (lambda: view([sk.Aggregation("amount", "sum", timedelta(minutes=90))]), "not a multiple of the hop"),
    (lambda: view([sk.Aggregation("merchant", "mean", D)]), "mean does not apply to column 'merchant'"),
    (lambda: view([sk.Aggregation("online", "sum", D)]), "sum does not apply"),
    (lambda: view([sk.Aggregation("nope", "sum", D)]), "unknown event column 'nope'"),
    (lambda: view([sk.Aggregation("card_id", "sum", D)]), "unknown event column 'card_id'"),
    (lambda: view([sk.Aggregation("amount", "sum", D), sk.Aggregation("amount", "sum", D)]), "duplicate"),
    (lambda: view(event_id="nope"), "event_id 'nope'"),
    (lambda: sk.AggregatedView("v", [card], SCHEMA, [], hop=H), "at least one aggregation"),
    (lambda: view(hop=timedelta(0)), "hop must be positive"),
])
def test_bad_definitions_are_definition_errors(make, message):
    with pytest.raises(DefinitionError, match=message):
        make()


def test_min_max_last_fit_strings_and_keep_their_type():
    v = view([sk.Aggregation("merchant", "max", D), sk.Aggregation("merchant", "last", D),
              sk.Aggregation("online", "last", D), sk.Aggregation("qty", "mean", D)])
    assert [f.dtype for f in v.features] == [sk.String, sk.String, sk.Bool, sk.Float64]


def test_plan_shows_aggregation_changes_and_refuses_breaking_ones(repo):
    repo.apply([card, view()])
    assert repo.get_feature_view("txn") == view()
    longer = [sk.Aggregation("amount", "sum", 7 * D), sk.Aggregation(None, "count", H),
              sk.Aggregation("amount", "last_k(3)", D), sk.Aggregation("qty", "sum", D),
              sk.Aggregation("amount", "max", D)]
    p = repo.plan([card, view(longer)])
    assert not p.breaking and "add aggregation amount_max_1d" in str(p)
    changed = [sk.Aggregation("amount", "sum", 7 * D), sk.Aggregation(None, "count", H, name="count_1h"),
               sk.Aggregation("amount", "mean", D, name="qty_sum_1d"), sk.Aggregation("amount", "last_k(3)", D)]
    reasons = [b for c in repo.plan([card, view(changed)]).breaking for b in c.breaking]
    assert any("qty_sum_1d column 'qty' -> 'amount'" in r for r in reasons)
    assert any("qty_sum_1d function 'sum' -> 'mean'" in r for r in reasons)
    reasons = [b for c in repo.plan([card, view(hop=timedelta(minutes=30))]).breaking for b in c.breaking]
    assert any("hop_us" in r for r in reasons)
    reasons = [b for c in repo.plan([card, view(event_id=None)]).breaking for b in c.breaking]
    assert any("event_id 'txn_id' -> None" in r for r in reasons)
    with pytest.raises(DefinitionError, match="breaking"):
        repo.apply([card, view(hop=timedelta(minutes=30))])


def test_tiles_and_window_start_follow_the_spec():
    h = 10
    # tile i is (i*h, (i+1)*h]: a boundary instant belongs to the tile that ends there
    assert [tile_of(t, h) for t in (-1, 0, 1, 9, 10, 11)] == [-1, -1, 0, 0, 0, 1]
    # start = floor_h(t - w): the greatest multiple of h <= t - w, also before the epoch
    assert window_start_us(25, 10, 10) == 10 and window_start_us(20, 10, 10) == 10
    assert window_start_us(5, 10, 10) == -10 and window_start_us(-1, 10, 10) == -20
