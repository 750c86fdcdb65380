"""AWS adapters: S3 offline store and registry. ElastiCache (``redis://``, ``rediss://``) is served by the shared
Redis adapter, ``skewless.adapters.redis``, which the ``aws`` extra installs."""
