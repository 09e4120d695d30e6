"""The Dockerfile's base image for podman: the real one when a registry answers, else a stand-in.

The stand-in is what the base is made of, built locally: Debian bookworm by debootstrap
(from the Debian mirror, which CI reaches when no container registry does) with python3,
python3-venv, python3-pip and ca-certificates, tagged with the name the Dockerfile's FROM
resolves to. Its Python is bookworm's 3.11, the version the Dockerfile asks for; it lives
in /usr/bin, not /usr/local/bin as in the real image, which only PATH sees. It also trusts
the CAs this host trusts, so pip inside the build gets through an egress proxy that the
host's certificates accept. Its root filesystem is cached as a tar under
~/.cache/infermeter/ for a week (about 150 MB): later runs import it in seconds.

``python -m tests.container.base`` makes sure the base is there and says which it is (CI).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "python-is-python3")
MIRROR = "http://deb.debian.org/debian"
STAND_IN_LABEL = "org.infermeter.stand-in"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "infermeter"
CACHE_DAYS = 7
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# What the slim image's config sets and an imported tarball lacks; PATH above all, as the
# Dockerfile's ENV PATH=/opt/venv/bin:$PATH extends it.
IMPORT_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8",
                  'CMD ["python3"]')


def dockerfile_base() -> str:
    """The image the Dockerfile's FROM names, with its ARG defaults filled in."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    image = re.findall(r"^FROM (\S+)", text, re.MULTILINE)[-1]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def podman(*args: str, timeout: float = 120, input_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    with (input_file.open("rb") if input_file else open(os.devnull, "rb")) as stdin:
        result = subprocess.run(["podman", *args], stdin=stdin, capture_output=True, timeout=timeout, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def _is_stand_in(image: str) -> bool:
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", image).stdout
    return STAND_IN_LABEL in labels


def ensure_base(image: str | None = None) -> str:
    """Make ``image`` (default: the Dockerfile's base) present; say where it came from."""
    image = image or dockerfile_base()
    if podman("image", "exists", image).returncode == 0:
        kind = "a local stand-in (debootstrap), already loaded" if _is_stand_in(image) else "the real image, already present"
        return f"base image {image}: {kind}"
    pulled = podman("pull", "--quiet", image, timeout=600)
    if pulled.returncode == 0:
        return f"base image {image}: the real image, pulled"
    reason = (pulled.stderr.strip().splitlines() or ["no error output"])[-1]
    how = _import_stand_in(image)
    return f"base image {image}: a local stand-in (debootstrap bookworm, {how}); the real one cannot be pulled: {reason}"


def _cache_file(image: str) -> Path:
    key = hashlib.sha256("|".join((image, MIRROR, *PACKAGES, *IMPORT_CHANGES)).encode())
    if HOST_CA.is_file():
        key.update(HOST_CA.read_bytes())
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", image.rsplit("/", 1)[-1])
    return CACHE / f"stand-in-{name}-{key.hexdigest()[:12]}.tar"


def _import_stand_in(image: str) -> str:
    tarball = _cache_file(image)
    fresh = tarball.is_file() and time.time() - tarball.stat().st_mtime < CACHE_DAYS * 86400
    how = f"cached {tarball}"
    if not fresh:
        started = time.monotonic()
        _build_rootfs_tar(tarball)
        for stale in tarball.parent.glob(tarball.name.rsplit("-", 1)[0] + "-*.tar"):
            if stale != tarball:
                stale.unlink()
        how = f"built in {time.monotonic() - started:.0f} s, cached as {tarball}"
    changes = [arg for change in (*IMPORT_CHANGES, f"LABEL {STAND_IN_LABEL}=debootstrap-bookworm") for arg in ("--change", change)]
    result = podman("import", *changes, "-", image, input_file=tarball, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"podman import failed: {result.stderr.strip()}")
    return how


def _build_rootfs_tar(tarball: Path) -> None:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise RuntimeError("the stand-in base needs root and debootstrap (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="infermeter-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), "bookworm", str(root), MIRROR],
                       check=True, stdout=subprocess.DEVNULL, timeout=1200)
        # What the slim image leaves out too: apt's downloads and lists, documentation, locales.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file() or entry.is_symlink():
                    entry.unlink()
                elif entry.is_dir():
                    shutil.rmtree(entry)
        if HOST_CA.is_file():
            shutil.copyfile(HOST_CA, root / "etc/ssl/certs/ca-certificates.crt")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=600)
        partial.replace(tarball)


if __name__ == "__main__":
    try:
        print(ensure_base(), flush=True)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"base image: {exc}", file=sys.stderr)
        sys.exit(1)
