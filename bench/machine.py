"""The machine the numbers come from, and /proc readers for server processes."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int | None:
    """VmRSS of a live process in KiB, None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields resume after ")".
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> float | None:
    """CPU time spent by everything on the machine (all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: in user]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class ProcSample:
    """RSS and CPU summed over a set of pids at one moment."""

    rss_kb: int | None
    cpu_s: float | None
    missing: int  # pids that could not be read (process gone)

    @classmethod
    def take(cls, pids: list[int]) -> ProcSample:
        if not pids:
            return cls(None, None, 0)
        rss = [rss_kb(pid) for pid in pids]
        cpu = [cpu_seconds(pid) for pid in pids]
        missing = sum(value is None for value in rss)
        return cls(
            sum(value for value in rss if value is not None),
            sum(value for value in cpu if value is not None),
            missing,
        )


def raise_nofile_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows.

    Done before the server is started so that daphne and redis-server inherit it.
    Returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(wanted, 1 << 20)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_quota() -> str | None:
    """cgroup v2 CPU limit, e.g. '2.0 CPUs', None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return f"{int(quota) / int(period):.1f} CPUs"


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def _git_revision(repo: Path) -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{rev}{' (uncommitted changes)' if dirty else ''}"


def _versions() -> dict[str, str]:
    found = {}
    for name in (
        "daphne",
        "uvicorn",
        "uvloop",
        "httptools",
        "Django",
        "channels",
        "channels-redis",
        "redis",
        "websockets",
        "httpx",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def machine_info(app_dir: Path = REPO) -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "cpu_quota": _cpu_quota(),
        "mem_total_mb": _mem_total_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "app_dir": str(app_dir),
        "git": _git_revision(app_dir),
        "packages": _versions(),
        "bridge_env": {k: v for k, v in os.environ.items() if k.startswith("BRIDGE_")},
    }
