"""Start Flower behind basic auth, with the login from the settings.

The login is handed over in Flower's own environment variable, not on the command line,
where any user of the machine could read it.
"""

from __future__ import annotations

import os
import sys

from settings import get_settings


def main() -> None:
    login = get_settings().flower_basic_auth.get_secret_value()
    if ":" not in login:
        sys.exit("CV_FLOWER_BASIC_AUTH must be user:password: Flower is never open to all")
    os.environ["FLOWER_BASIC_AUTH"] = login
    port = os.environ.get("CV_FLOWER_PORT", "5555")
    argv = ["celery", "-A", "workers.app", "flower", "--address=127.0.0.1", f"--port={port}"]
    os.execvp(argv[0], argv)  # noqa: S606 - fixed argv, replaces this process


if __name__ == "__main__":
    main()
