"""Helpers shared by the tests (not tests themselves): the spec oracle, the conformance suites, repo builders for
object stores, the prediction-log helpers, the Terraform checks, the import-layer view. Imported by full path:
``from tests.support import oracle``."""
