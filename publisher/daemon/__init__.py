"""The daemon behind `publisher run`: scheduling (`scheduler`, the only user of APScheduler), watching
seeds/ (`watch`, the only user of watchfiles), the digest's cron schedule (`cron`) and catch-up rules
(`catchup`), its record in the state database (`record`), and what `publisher status` shows (`status`).

Importing this package is cheap: `runner` and `scheduler` are imported only by `publisher run`.
"""
