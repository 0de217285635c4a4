"""Paging people: messages per channel, delivery through apprise, signed console links.

``settings`` (what may be sent where), ``links`` (signed, expiring, single-use links),
``messages`` (what a page says on each channel), ``send`` (one route, then the route order with
retries), ``errors`` (what can go wrong, as bot-level errors). Redis state for paging lives in
:mod:`bot.store.pages`; the RQ jobs that drive it in :mod:`workers.pages`.
"""
