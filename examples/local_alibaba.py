"""skewless on the local Alibaba cloud: registry on OSS (the OSS-protocol shim), histories in MaxCompute (the
emulator; training sets run as MaxCompute SQL), Tair online (the TairHash emulator).

    skewless local up
    skewless local config REPO --project example --cloud alibaba
    python examples/local_alibaba.py REPO

The same script runs against Alibaba Cloud with a skewless.yaml naming your OSS bucket, MaxCompute project and Tair
instance (docs/getting-started/alibaba.md).
"""

import sys

import skewless as sk
from driver_stats import run

if __name__ == "__main__":
    store = sk.FeatureStore(sys.argv[1] if len(sys.argv) > 1 else ".")
    if not store.config.registry.url.startswith("oss://"):
        sys.exit(f"expected an OSS registry in {store.repo_path}/skewless.yaml; got {store.config.registry.url}")
    run(store)
