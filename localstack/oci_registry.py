"""A local OCI registry standing in for ECR/ACR: Debian's ``docker-registry`` (distribution 2.8) on loopback, with
storage in the local cloud's state folder and ECR's login shape (user ``AWS``, password = an authorization token).

    reg = OciRegistry(".skewless-local")          # or LocalCloud(...).up(["registry"])
    reg.start()                                    # idempotent, like every local service
    tok = reg.get_authorization_token()            # ECR's GetAuthorizationToken response shape
    user, password = reg.credentials()             # ("AWS", token): what `podman login` takes
    reg.stop()

The token is a random secret made once per state folder (``registry/token``, mode 0600); the registry checks it
through an htpasswd file holding its bcrypt hash, so a wrong token is refused like an expired ECR token.
``rotate_token()`` makes a new one (the registry re-reads htpasswd when it changes).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from skewless.errors import ConfigError

from skewless.process import Service

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
USER = "AWS"  # ECR's fixed login user
TOKEN_HOURS = 12  # what ECR reports; the local token does not expire, the figure only keeps the response shape


def registry_binary() -> str:
    found = os.environ.get("SKEWLESS_DOCKER_REGISTRY") or shutil.which("docker-registry")
    if not found:
        raise ConfigError("the local OCI registry needs Debian's docker-registry: apt-get install docker-registry "
                          "(./run test installs it when root)")
    return found


def bcrypt_hash(password: str) -> str:
    """An htpasswd bcrypt hash (the only scheme the registry accepts): ``htpasswd -B``, else python ``bcrypt``."""
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-niB", USER], input=password.encode(), capture_output=True, check=True)
        return out.stdout.decode().strip().split(":", 1)[1]
    try:
        import bcrypt
    except ImportError as exc:
        raise ConfigError("hashing the registry token needs htpasswd (apt-get install apache2-utils) or "
                          "`pip install bcrypt`") from exc
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def _healthy(svc: Service) -> bool:
    # /v2/ is the registry API's base; with auth on it answers 401 plus the distribution header, which is proof
    # enough that the registry (and not some other program on the port) is up.
    try:
        with urllib.request.urlopen(f"http://{svc.host}:{svc.port}/v2/", timeout=1) as resp:  # noqa: S310
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        headers = exc.headers
    return (headers.get("Docker-Distribution-Api-Version") or "").startswith("registry/2")


class OciRegistry:
    """One registry per state folder: ``<state>/registry/`` (config, htpasswd, token, storage), ``<state>/run/``
    (pid and log, like the other local services)."""

    def __init__(self, state_dir: str | os.PathLike = ".skewless-local", port: int | None = None):
        self.state = Path(state_dir).resolve()
        self.root = self.state / "registry"
        if port is None:
            raw = os.environ.get("SKEWLESS_LOCAL_REGISTRY_PORT")
            port = int(raw) if raw else DEFAULT_PORT
        self.service = Service("registry", HOST, port, self._command, _healthy, start_timeout=30, cwd=self.root)

    @property
    def endpoint(self) -> str:
        """``host:port``: the registry part of an image name (``127.0.0.1:5000/credit:1``)."""
        return self.service.endpoint

    # -- credentials ----------------------------------------------------------------------------------------------
    def token(self) -> str:
        path = self.root / "token"
        if not path.exists():
            self.rotate_token()
        return path.read_text().strip()

    def rotate_token(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        tok = secrets.token_urlsafe(32)
        # Hash first, then swap both files in: a registry re-reading htpasswd never sees a token without its hash.
        for name, text, mode in (("htpasswd", f"{USER}:{bcrypt_hash(tok)}\n", 0o644), ("token", tok, 0o600)):
            tmp = self.root / f".{name}.tmp"
            tmp.write_text(text)
            tmp.chmod(mode)
            tmp.replace(self.root / name)
        return tok

    def credentials(self) -> tuple[str, str]:
        return USER, self.token()

    def get_authorization_token(self) -> dict:
        """ECR's ``GetAuthorizationToken`` response: base64 ``AWS:<token>``, expiry and the proxy endpoint."""
        raw = base64.b64encode(f"{USER}:{self.token()}".encode()).decode()
        expires = datetime.now(timezone.utc) + timedelta(hours=TOKEN_HOURS)
        return {"authorizationData": [{"authorizationToken": raw, "expiresAt": expires,
                                       "proxyEndpoint": f"http://{self.endpoint}"}]}

    # -- process ----------------------------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        binary = registry_binary()
        self.token()  # the htpasswd file must exist before the registry starts
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: info, formatter: json}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'storage'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{HOST}:{self.service.port}', secret: {secrets.token_hex(16)}}}\n"
            f"auth: {{htpasswd: {{realm: skewless-local-registry, path: {self.root / 'htpasswd'}}}}}\n")
        return [binary, "serve", str(config)]

    def start(self) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.service.start(self.state / "run")

    def stop(self) -> bool:
        return self.service.stop(self.state / "run")

    def status(self) -> str:
        return self.service.status(self.state / "run")
