"""Development: the embedded default (SQLite + file-system broker) and DEBUG on."""

from .base import *  # noqa: F401,F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", True)
