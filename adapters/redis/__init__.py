"""The Redis adapter (``redis://``, ``rediss://``: ElastiCache, MemoryDB, any Redis >= 6.2), shared by the clouds:
AWS serves ElastiCache through it, Alibaba's Tair store (``skewless.adapters.alibaba.tair``) builds on its public
hooks. Installed with the ``redis`` extra (which ``aws`` and ``alibaba`` include). Never imports a cloud adapter.

- ``store``: ``RedisOnlineStore`` (options, retries and errors, reads, bookkeeping; the documented hooks a store
  built on it uses), ``from_url``.
- ``row_layout``: the row layout (one string per (view, entity)): encode, decode, read plans.
- ``row_writes``: its newest-wins writes (SET NX, then the Lua compare-and-set), standalone and cluster.
- ``row_small``: a small write's one script call framed without Arrow kernels (the same bytes).
- ``scripts``: the Lua upsert script, ``script_sha``.
- ``codec``: keys, value encodings and encoding passes (also the field layout's read plan, used by Tair).
- ``resp``: RESP framing of whole Arrow slices.
- ``wire``: one connection per thread, pipelined round trips, hiredis reply reading, socket polling.
"""
