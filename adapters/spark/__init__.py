"""The Spark engine (``offline.engine: spark``, the ``spark`` extra): the one PIT definition and the windowed
aggregations rendered in Spark SQL and run by a SparkSession over the Delta histories' files (engine.py)."""
