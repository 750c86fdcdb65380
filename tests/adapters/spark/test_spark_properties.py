"""The spec property tests (tests/core/test_properties.py) on the Spark engine: historical retrieval against the
oracle, and materialize + online reads against the online model and the spec invariant. Fewer examples than the
DuckDB run (each costs Spark queries: ~1 s each), the same generators and checks."""

from hypothesis import given, settings

from tests.core import test_properties as props

from .conftest import spark_repo

EXAMPLES = props.EXAMPLES


@settings(max_examples=EXAMPLES or 8, **props.SETTINGS)
@given(case=props.historical_case())
def test_historical_matches_oracle_on_spark(case):
    props.run_historical_case(case, spark_repo)


@settings(max_examples=EXAMPLES or 5, **props.SETTINGS)
@given(case=props.online_case())
def test_online_matches_model_and_invariant_on_spark(case):
    props.run_online_case(case, spark_repo)
