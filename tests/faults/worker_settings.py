"""Settings for worker and beat processes started by the fault tests: worker_test plus the
broadcast knobs a fault test needs to turn from its environment."""

import os

from config.settings.worker_test import *  # noqa: F401,F403

for _name, _cast in (("BROADCAST_MAX_ATTEMPTS", int), ("BROADCAST_ERROR_RATE_MIN_SAMPLE", int),
                     ("BROADCAST_ERROR_RATE_THRESHOLD", float), ("BROADCAST_STALL_SECONDS", float),
                     ("BROADCAST_UNKNOWN_AFTER_SECONDS", float)):
    if os.environ.get(_name):
        globals()[_name] = _cast(os.environ[_name])
