"""Geolocation: which physical branch a post is about.

Modules, one concept each (import from them; this package imports nothing, so that
``triagebot branches list`` does not load spaCy):

* ``registry``: :class:`Branch`, :class:`Registry`, YAML loading and CSV import, validated;
* ``index``: nearest branch within a radius, branches in a bounding box;
* ``gazetteer``: branch names, aliases, streets, areas, landmarks and cities in post text;
* ``offline`` / ``geocoder``: profile locations to places, offline or online, never raising;
* ``locate``: :class:`Locator` and ``locate(post) -> Location`` with confidence and evidence;
* ``model``: :class:`Location` and :class:`Evidence`;
* ``settings``: the ``geo:`` settings section and :func:`build_locator`;
* ``commands``: the ``triagebot branches`` click group;
* ``evaluate`` / ``bench``: the labelled-set evaluation and the timing figures.
"""
