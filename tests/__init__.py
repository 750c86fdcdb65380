"""The test suite, in folders by area (core, offline, online, adapters/{aws,alibaba,redis}, serving, localcloud,
terraform, packaging); helpers that are not tests live in ``tests/support/``. Every folder is a package, so a test
module imports helpers and other test modules by their full path from the repository root
(``from tests.support.oracle import Row``, ``from tests.serving.test_serving import running``): one name per module,
whichever folder pytest starts from."""
