"""``cv``: the operators' command-line tool. ``cv --help`` lists the commands; each group
is a module of this package."""

from __future__ import annotations

import click

from api.cli.audit import audit
from api.cli.catalogue import catalogue
from api.cli.clients import client
from api.cli.db import db
from api.cli.demo import demo
from api.cli.keys import keys
from api.cli.prune import prune
from api.cli.redrives import redrives
from api.cli.tokens import token
from api.cli.vehicles import vehicles
from api.cli.webhooks import webhooks

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate Connected Vehicles: database, clients, tokens, vehicles.

    Settings come from CV_* environment variables (and ./.env): CV_DATABASE_URL,
    CV_SECRET_KEY, CV_BROKER_URL, CV_PUBLIC_URL.
    """


main.add_command(db)
main.add_command(catalogue)
main.add_command(client)
main.add_command(token)
main.add_command(webhooks)
main.add_command(demo)
main.add_command(vehicles)
main.add_command(keys)
main.add_command(prune)
main.add_command(redrives)
main.add_command(audit)
