"""skewless on the local AWS cloud: registry and Delta histories on S3 (LocalStack), Redis online.

    skewless local up                                  # needs pip install "skewless[local]"
    skewless local config REPO --project example       # writes REPO/skewless.yaml pointing at it
    python examples/local_aws.py REPO

The same script runs against real AWS with a skewless.yaml naming your bucket and cache (docs/getting-started/aws.md).
"""

import sys

import skewless as sk
from driver_stats import run

if __name__ == "__main__":
    store = sk.FeatureStore(sys.argv[1] if len(sys.argv) > 1 else ".")
    if not store.config.registry.url.startswith("s3://"):
        sys.exit(f"expected an S3 registry in {store.repo_path}/skewless.yaml; got {store.config.registry.url}")
    run(store)
