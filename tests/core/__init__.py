"""The core (skewless minus adapters, serving and the local cloud): config, definitions, the feature registry,
ingest, materialize, the CLI, typed errors, the embedded backends, and the SDK against the spec oracle."""
