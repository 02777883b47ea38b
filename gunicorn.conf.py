"""Gunicorn reads this file from the working directory: its access and error logs mask phone numbers and tokens.

Request lines carry them (`/api/v1/contacts/+33612345678/`, `/optin/confirm/<token>/`), so both logs
go through the same filter as every other handler of the service.
"""

_generic = {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "datefmt": "[%Y-%m-%d %H:%M:%S %z]"}

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"personal_data": {"()": "config.logging.PersonalDataFilter"}},
    "formatters": {"generic": _generic},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "filters": ["personal_data"],
                    "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "filters": ["personal_data"],
                          "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
