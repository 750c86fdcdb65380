"""Streams into feature views: the source contract (``source.py``), the consumer that writes micro-batches with
exactly-once positions (``consume.py``) and the dead-letter location for records that fail validation."""
