import os

import pytest

import skewless as sk
from tests.support.paths import ROOT


@pytest.fixture
def repo(tmp_path):
    """An empty feature repo on embedded defaults."""
    return sk.init_repo(tmp_path / "repo", project="test")


# -- the local cloud: started through the same code as `skewless local up`, stopped at the end if we started it --


@pytest.fixture(scope="session")
def local_cloud():
    """The local cloud (state in <repo>/.skewless-local). Services start on demand via ``cloud_service``."""
    from skewless.localcloud import DUMMY_CREDENTIALS, LocalCloud

    for k, v in DUMMY_CREDENTIALS.items():  # emulators accept any keys; never a real account's
        os.environ.setdefault(k, v)
    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
    yield cloud
    cloud.release()  # stops what test sessions started, once no other session (or terminal) still uses it


def _service(cloud, name):
    cloud.acquire([name])
    return cloud


@pytest.fixture(scope="session")
def redis_url(local_cloud):
    """A real redis-server on loopback."""
    return _service(local_cloud, "redis").endpoints()["redis"]


@pytest.fixture(scope="session")
def localstack_s3(local_cloud):
    """LocalStack's S3 endpoint URL."""
    return _service(local_cloud, "localstack").endpoints()["s3"]


@pytest.fixture(scope="session")
def moto_endpoint(local_cloud):
    """moto server's endpoint URL (S3, SageMaker, ECR, ElastiCache, Glue, IAM)."""
    return _service(local_cloud, "moto").endpoints()["moto"]


@pytest.fixture(scope="session")
def maxcompute_endpoint(local_cloud):
    """Keyword arguments for ``odps.ODPS(**...)`` against the local MaxCompute emulator (project ``local``)."""
    from skewless.localcloud.maxcompute_emulator import endpoint_options

    return endpoint_options(_service(local_cloud, "maxcompute").services["maxcompute"].endpoint)


@pytest.fixture(scope="session")
def tair_url(local_cloud, redis_url):
    """The Tair emulator (TairHash over the local cloud's Redis) as a tair:// URL."""
    return _service(local_cloud, "tair").endpoints()["tair"]


@pytest.fixture(scope="session")
def oss_endpoint(local_cloud, moto_endpoint):
    """The OSS-protocol shim's endpoint URL (oss2 speaks to it; objects live in moto's S3)."""
    return _service(local_cloud, "oss").endpoints()["oss"]


@pytest.fixture(scope="session")
def datahub_endpoint(local_cloud):
    """The local DataHub emulator's endpoint URL (pydatahub's default client speaks to it with ``test``/``test``)."""
    return _service(local_cloud, "datahub").endpoints()["datahub"]


@pytest.fixture(scope="session")
def datahub_client(datahub_endpoint):
    """pydatahub's default client (JSON protocol, LZ4 bodies) on the local DataHub emulator."""
    datahub = pytest.importorskip("datahub")  # the alibaba extra
    return datahub.DataHub("test", "test", datahub_endpoint)


@pytest.fixture
def datahub_project(datahub_client):
    """A fresh DataHub project on the emulator, deleted (with its topics) afterwards."""
    import uuid

    name = f"p_{uuid.uuid4().hex[:12]}"
    datahub_client.create_project(name, "test project")
    yield name
    for topic in datahub_client.list_topic(name).topic_names:
        datahub_client.delete_topic(name, topic)
    datahub_client.delete_project(name)
