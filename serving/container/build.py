"""Build the serving image (``Dockerfile`` beside this file) without a Docker engine, and push it.

    ctx = build_context(dest, model_dir=art.path, requirements=art.manifest.requirements)  # wheels/ + model/
    build_image("credit:1", model_dir=..., requirements=...)   # podman build of the same Dockerfile
    build_feature_server("features:1", FeatureStore("repo"))   # its feature-server target (`skewless serve`)
    push_image("credit:1", "127.0.0.1:5000/credit:1", user="AWS", password=token)

Where no base image can be pulled, the base is a Debian bookworm root with python3 (3.11, the same minor version
as python:3.11-slim and the host, so host-built wheels fit) made once with debootstrap. Its root tarball is cached
in ``$SKEWLESS_CACHE`` (default ``~/.cache/skewless``) under a file lock, so parallel builds and several clones make
it once; the podman image is re-imported from the tarball if podman's storage was reset. pip in a build has no
index, so every wheel is built on the host (``pip wheel``) and installed offline in the image.

Containers run only as ``podman --runtime runc --cgroup-manager=cgroupfs`` on machines with hybrid cgroups (crun
fails there), hence ``PODMAN``.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from skewless.errors import ConfigError, StoreUnavailable

HERE = Path(__file__).resolve().parent
DOCKERFILE = HERE / "Dockerfile"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# Wheels the image's Python (bookworm's 3.11.2) needs that a newer 3.11 host leaves out by their markers: redis-py
# requires async-timeout below Python 3.11.3 (``skewless[redis]``, the feature server's usual store).
IMAGE_PYTHON_WHEELS = ("async-timeout>=4.0.3",)
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BASE_TAG = "localhost/skewless-base:bookworm-py311"
BASE_PACKAGES = ("python3", "ca-certificates")  # certificates: the server talks HTTPS to S3/OSS in a cloud
# Docs, manuals, translations and apt's caches are ~40% of a minbase root and unused by a server.
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt",
        "var/lib/apt/lists", "var/cache/debconf/templates.dat-old", "var/log")


def _cache_dir() -> Path:
    from skewless.process import cache_dir

    return cache_dir()


def _run(argv: Sequence[str], what: str, *, input: bytes | None = None, timeout: float = 1800) -> str:
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what}: {argv[0]} is not installed (Debian: apt-get install podman buildah runc "
                          f"debootstrap; ./run test does it when root)") from exc
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace")[-4000:]
        raise StoreUnavailable(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:6])} ...\n{err}")
    return (proc.stdout or b"").decode(errors="replace")


def podman(*args: str, what: str = "podman", timeout: float = 1800) -> str:
    return _run([*PODMAN, *args], what, timeout=timeout)


def image_exists(tag: str) -> bool:
    try:
        return subprocess.run([*PODMAN, "image", "exists", tag], capture_output=True, timeout=60).returncode == 0
    except FileNotFoundError:
        return False


def _image_id(tag: str) -> str | None:
    proc = subprocess.run([*PODMAN, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True,
                          timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


# -- the base image --------------------------------------------------------------------------------------------
def debian_mirror() -> str:
    """``$SKEWLESS_DEBIAN_MIRROR``, else the first Debian archive apt is configured with (the reachable one)."""
    if os.environ.get("SKEWLESS_DEBIAN_MIRROR"):
        return os.environ["SKEWLESS_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for src in sources:
        try:
            text = src.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


def base_image(progress=None) -> str:
    """The podman tag of the Python base image, made on first use (~1 min) and cached."""
    if image_exists(BASE_TAG):
        return BASE_TAG
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / "base-bookworm-py311.tar"
    with open(cache / "base-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(BASE_TAG):  # made by another process while we waited
            return BASE_TAG
        if not tarball.exists():
            _debootstrap(tarball, progress)
        with open(tarball, "rb") as fh:
            proc = subprocess.run([*PODMAN, "import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin"
                                   ":/usr/bin:/sbin:/bin", "-", BASE_TAG], stdin=fh, capture_output=True)
        if proc.returncode != 0:
            raise StoreUnavailable(f"podman import of the base image failed:\n{proc.stderr.decode()[-3000:]}")
    return BASE_TAG


def _debootstrap(tarball: Path, progress=None) -> None:
    if os.geteuid() != 0:
        raise ConfigError("making the base image needs root (debootstrap); or build with Docker from "
                          "serving/container/Dockerfile")
    if shutil.which("debootstrap") is None:
        raise ConfigError("debootstrap is not installed: apt-get install debootstrap (./run test does it as root)")
    mirror = debian_mirror()
    if progress:
        progress(f"making the base image with debootstrap from {mirror} (once per machine, ~1 min)")
    with tempfile.TemporaryDirectory(prefix="skewless-rootfs-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm", str(root),
              mirror], "debootstrap", timeout=1200)
        for rel in TRIM:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(parents=True)
            elif target.exists():
                target.unlink()
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], "tar of the base root")
        partial.replace(tarball)  # atomic: a crash never leaves a half tarball that looks finished


# -- wheels and the build context --------------------------------------------------------------------------------
def _source_tree() -> Path | None:
    """The skewless source checkout this code runs from (an editable install), if any."""
    import skewless

    root = Path(skewless.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() and (root / "serving").is_dir() else None


def _skewless_wheel(dest: Path) -> Path:
    """The skewless wheel: built from the checkout (so the image runs the code being tested), else from PyPI."""
    from importlib import metadata

    src = _source_tree()
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest)]
    if src is None:
        _run([*pip, f"skewless=={metadata.version('skewless')}"], "pip wheel skewless")
    else:
        # A copy without build/ and egg-info: setuptools would package stale files left in build/lib.
        with tempfile.TemporaryDirectory(prefix="skewless-src-") as tmp:
            for name in ("pyproject.toml", "README.md"):
                shutil.copy2(src / name, tmp)
            for pkg in ("sdk", "adapters", "serving", "localstack"):
                shutil.copytree(src / pkg, Path(tmp) / pkg,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            _run([*pip, tmp], "pip wheel of the skewless checkout")
    return next(dest.glob("skewless-*.whl"))


def build_context(dest: str | Path, *, model_dir: str | Path | None = None, requirements: Iterable[str] = (),
                  extras: Iterable[str] = ("serving",)) -> Path:
    """A Docker build context for ``Dockerfile``: ``wheels/`` (all offline), ``model/`` (empty unless baked)."""
    if sys.version_info[:2] != (3, 11):
        raise ConfigError("the image's Python is 3.11 (bookworm, python:3.11-slim): build its wheels with a "
                          f"Python 3.11 host, not {sys.version.split()[0]}")
    dest = Path(dest)
    wheels, model = dest / "wheels", dest / "model"
    for d in (wheels, model):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    whl = _skewless_wheel(wheels)
    extras = sorted(set(extras) | {"serving"})
    # The model's pins, except skewless itself: the image gets the wheel built above.
    pins = [r for r in requirements if not re.match(r"skewless\b", r.strip())]
    spec = f"skewless[{','.join(extras)}]"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheels), f"{whl}[{','.join(extras)}]", *pins,
          "pip", *IMAGE_PYTHON_WHEELS], "pip wheel of the image's requirements")
    (wheels / "requirements.txt").write_text("\n".join([spec, *pins]) + "\n")
    if model_dir is not None:
        shutil.copytree(model_dir, model, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(DOCKERFILE, dest / "Dockerfile")
    return dest


TARGETS = ("model-server", "feature-server")  # the Dockerfile's final stages


def build_image(tag: str, *, model_dir: str | Path | None = None, requirements: Iterable[str] = (),
                extras: Iterable[str] = ("serving",), labels: dict[str, str] | None = None,
                progress=None, target: str = "model-server") -> dict:
    """Build ``Dockerfile``'s ``target`` (the model server, or ``feature-server``: ``skewless serve``) with podman
    on the cached base image. Returns timings and the image size."""
    if target not in TARGETS:
        raise ConfigError(f"image target {target!r}: expected one of {', '.join(TARGETS)}")
    timings = {}
    t0 = time.monotonic()
    base = base_image(progress)
    timings["base_image_s"] = round(time.monotonic() - t0, 1)
    with tempfile.TemporaryDirectory(prefix="skewless-image-") as tmp:
        t0 = time.monotonic()
        if progress:
            progress("building wheels on the host")
        ctx = build_context(tmp, model_dir=model_dir, requirements=requirements, extras=extras)
        timings["wheels_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        if progress:
            progress(f"building {tag} on {base}")
        label_args = [a for k, v in (labels or {}).items() for a in ("--label", f"{k}={v}")]
        previous = _image_id(tag)
        # --no-cache: the wheels are bind-mounted, so a layer cache keyed on the RUN line alone would reuse an
        # install of older wheels; the RUN is the whole cost of a build anyway.
        podman("build", "--no-cache", "--network", "host", *ULIMITS, "--build-arg", f"BASE={base}", *label_args,
               "--target", target, "-t", tag, "-f", str(ctx / "Dockerfile"), str(ctx), what=f"podman build {tag}")
        timings["build_s"] = round(time.monotonic() - t0, 1)
    if previous and previous != _image_id(tag):
        # The image this tag named before is now untagged: drop it (not a global prune, other images are not ours).
        subprocess.run([*PODMAN, "rmi", previous], capture_output=True, timeout=120)
    size = podman("image", "inspect", "--format", "{{.Size}}", tag).strip()
    return {"image": tag, "size_bytes": int(size) if size.isdigit() else None, **timings}


def build_registered(tag: str, store, name: str, version: int | None = None, *, stage: str | None = None,
                     extras: Iterable[str] = (), progress=None) -> dict:
    """An image with a registered model version baked in at /opt/ml/model, plus the extras the repo's stores
    need (e.g. ``aws`` for Redis/S3), so the image runs against the same stores the model was registered with."""
    import json

    from ..model_registry import MODEL_REGISTRY_SIDECAR, ModelRegistry

    with tempfile.TemporaryDirectory(prefix="skewless-model-") as tmp:
        art = ModelRegistry(store).download(name, version, stage=stage, dest=Path(tmp) / "model")
        v = json.loads((art.path / MODEL_REGISTRY_SIDECAR).read_text())["version"]
        return build_image(tag, model_dir=art.path, requirements=art.manifest.requirements,
                           extras={*extras, *store_extras(store.config)}, progress=progress,
                           labels={"skewless.model": name, "skewless.model.version": str(v)})


def build_feature_server(tag: str, store=None, *, extras: Iterable[str] = (), progress=None) -> dict:
    """The ``feature-server`` image (``skewless serve``; the repo is mounted at /repo when it runs), with the
    extras ``store``'s stores need (e.g. ``redis`` for a Redis online store), when a ``FeatureStore`` is given."""
    more = store_extras(store.config) if store is not None else set()
    return build_image(tag, extras={*extras, *more}, progress=progress, target="feature-server",
                       labels={"skewless.server": "feature-server"})


def store_extras(config) -> set[str]:
    """The pip extras that provide the adapters a repo's config uses (its online/offline/registry URLs)."""
    from skewless import plugins

    out = set()
    for role, url in (("online", config.online.url), ("offline", config.offline.url),
                      ("registry", config.registry.url)):
        adapter = plugins._ADAPTERS.get(role, {}).get(plugins.scheme_of(url))  # the scheme -> extra table
        if adapter is not None and adapter.extra:
            out.add(adapter.extra)
    return out


# -- push ---------------------------------------------------------------------------------------------------------
def login(oci_registry: str, authfile: str | Path, *, user: str, password: str, tls_verify: bool = False) -> Path:
    """``podman login`` (ECR-style: user ``AWS``, password = a token) into ``authfile`` only, never the user's
    podman config; the file is what a later pull or push takes as ``--authfile``."""
    tls = f"--tls-verify={'true' if tls_verify else 'false'}"
    _run([*PODMAN, "login", tls, "--authfile", str(authfile), "-u", user, "--password-stdin", oci_registry],
         f"login to {oci_registry}", input=password.encode())
    return Path(authfile)


def push_image(image: str, dest: str, *, user: str, password: str, tls_verify: bool = False) -> float:
    """Log in to ``dest``'s registry and push. Returns seconds. The login goes to a throwaway auth file."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="skewless-auth-") as tmp:
        auth = login(dest.split("/", 1)[0], Path(tmp) / "auth.json", user=user, password=password,
                     tls_verify=tls_verify)
        podman("push", f"--tls-verify={'true' if tls_verify else 'false'}", "--authfile", str(auth), image,
               f"docker://{dest}", what=f"push {image} to {dest}")
    return round(time.monotonic() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m skewless.serving.container.build MODEL_DIR TAG`` (or ``--context-only DIR`` for Docker)."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_dir", nargs="?", help="artifact to bake in at /opt/ml/model (else mount it there)")
    p.add_argument("--tag", default="skewless-serving:latest")
    p.add_argument("--extra", action="append", default=[], help="skewless extras, e.g. aws")
    p.add_argument("--context-only", metavar="DIR", help="only write the build context (for docker build)")
    a = p.parse_args(argv)
    reqs = []
    if a.model_dir:
        from ..artifact import ModelArtifact

        reqs = ModelArtifact(a.model_dir).manifest.requirements
    if a.context_only:
        print(build_context(a.context_only, model_dir=a.model_dir, requirements=reqs, extras=a.extra))
    else:
        print(build_image(a.tag, model_dir=a.model_dir, requirements=reqs, extras=a.extra,
                          progress=lambda m: print(f"==> {m}", file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
