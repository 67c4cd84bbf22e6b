"""Small process helpers shared by the harness scripts."""

import os
import shutil
import subprocess
import sys


class HarnessError(SystemExit):
    """Stops the harness with one clear sentence and exit code 2."""


def say(message):
    print(f"[loyalty_mlm] {message}", flush=True)


def die(message):
    print(f"[loyalty_mlm] ERROR: {message}", file=sys.stderr, flush=True)
    raise HarnessError(2)


def have_root():
    return os.geteuid() == 0


def run(cmd, quiet=False, **kwargs):
    """Run a command; on failure show its output and stop the harness."""
    if quiet:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, **kwargs
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            die(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}")
        return proc
    proc = subprocess.run(cmd, check=False, **kwargs)
    if proc.returncode != 0:
        die(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return proc


class Apt:
    """Installs Debian packages when missing, if we are root and allowed to."""

    def __init__(self, environ):
        self.allowed = environ.get("LOYALTY_MLM_APT", "1") != "0"
        self._updated = False

    @staticmethod
    def missing(packages):
        missing = []
        for package in packages:
            proc = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", package],
                capture_output=True,
                text=True,
                check=False,
            )
            if "install ok installed" not in proc.stdout:
                missing.append(package)
        return missing

    def install(self, packages, why):
        if not shutil.which("dpkg-query"):
            return
        todo = self.missing(packages)
        if not todo:
            return
        if not (self.allowed and have_root() and shutil.which("apt-get")):
            die(
                f"Missing Debian packages for {why}: {' '.join(todo)}; install them "
                "(apt-get install ...) or run as root so the harness can."
            )
        say(f"Installing {' '.join(todo)} ({why})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if not self._updated:
            run(["apt-get", "update", "-qq"], quiet=True, env=env)
            self._updated = True
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *todo],
            quiet=True,
            env=env,
        )
