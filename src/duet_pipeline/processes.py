"""Which process on which host did something, and whether that process still runs.

Several things a process leaves behind outlive it when it is killed: an MLflow run still
RUNNING, a partial save, a training's claim on the cores. Each records its process (host
and pid), and whoever finds it later asks :func:`gone` before cleaning up: only a process
that no longer exists on this host is known to be finished with it.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import socket

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# A file a process owns ends in ".pid<pid>@<host>.<suffix>" (see owner_tag).
_OWNER = re.compile(r"\.pid(\d+)@([^/]+)\.[^./]+$")


def this_host() -> str:
    return socket.gethostname()


def alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def gone(pid: int, host: str) -> bool:
    """True only when the process is known to be finished: on this host and not running.
    A process on another host cannot be checked from here, so it is never gone."""
    return host == this_host() and pid != os.getpid() and not alive(pid)


def owner_tag(pid: int | None = None, host: str | None = None) -> str:
    """``pid<pid>@<host>``: the process (this one unless named) that owns a file, to put in
    its name before the suffix, so that :func:`owner_gone` can tell from the name alone."""
    return f"pid{os.getpid() if pid is None else pid}@{host or this_host()}"


def owner_gone(name: str) -> bool:
    """Whether the owner named in a file name is known to have ended. A name without an
    owner comes from code that named none, which is no longer running: gone."""
    match = _OWNER.search(name)
    return match is None or gone(int(match.group(1)), match.group(2))


def die_with_parent() -> None:
    """Have the kernel send this process SIGKILL when its parent ends, however it ends
    (a killed parent cannot clean up its children). Linux with glibc; elsewhere a no-op."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # no glibc
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server about to start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
