"""The online read path."""
