"""How a trial runs under Ray: the session contract (`session`), data-parallel trials (`ddp`), the device a trial
holds (`devices`), and what rides out a storage outage (`storage_outage`, `ray_internals`)."""
