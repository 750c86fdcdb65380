"""``skewless.localcloud``: the local cloud every cloud path is tested on (see ``localstack/README.md``)."""

from .cloud import DEFAULT_BUCKET, DUMMY_CREDENTIALS, LocalCloud, redis_service
from .oci_registry import OciRegistry
from skewless.process import Service

__all__ = ["DEFAULT_BUCKET", "DUMMY_CREDENTIALS", "LocalCloud", "OciRegistry", "Service", "redis_service"]
