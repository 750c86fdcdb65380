"""Abstract conformance suites, one per role. Every backend's tests subclass the suite of its role and provide
a fixture; capabilities (class attributes of the backend) decide which optional tests run."""
