"""Helpers shared by the benchmarks that start their own service processes."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_groups(processes, timeout: float = 20) -> None:
    """SIGTERM each process's group (started with start_new_session), then SIGKILL what outlives `timeout`."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(5)
