"""Image-search engines: one small module per engine, plus what they share.

Every engine module (``google``, ``bing``, ``duckduckgo``) is plain data, so a changed result
page is a one-place fix:

``NAME``
    The ``--engine`` value.
``SEARCH_URL``
    Result-page URL template with a ``{query}`` placeholder (the query is URL-encoded).
``FILTERS``
    For each kind (``"foreground"``, ``"background"``), the query-string fragment that asks the
    engine for suitable images: transparent ones for foregrounds, large ones for backgrounds.
``CONSENT_BUTTONS``
    CSS selectors of cookie-consent buttons to press once after the page loads.
``MORE_BUTTONS``
    CSS selectors of "more results" buttons pressed when scrolling stops adding results.
``EXTRACT_JS``
    JavaScript run with Selenium's ``execute_async_script``. ``arguments[0]`` is how many more
    results the caller still needs (an engine that must click tiles uses it to stop early);
    the last argument is the callback, called with a list of ``{image, thumb, page}`` objects:
    full-size image URL, thumbnail URL and the page showing the image, each possibly null.
    Calling it again returns the same results again plus any the page has added.

:func:`search_url` builds the URL that a search for one query of one kind loads; the browser
side lives in :mod:`scripts.engines.browser`.
"""

from __future__ import annotations

from types import ModuleType
from urllib.parse import quote_plus

from scripts.engines import bing, duckduckgo, google

ENGINES: dict[str, ModuleType] = {module.NAME: module for module in (google, bing, duckduckgo)}
"""Engine modules by ``--engine`` name."""


def search_url(engine: ModuleType, query: str, kind: str, template: str | None = None) -> str:
    """URL of the result page for ``query`` with the engine's filter for ``kind`` appended.

    Parameters
    ----------
    engine : module
        One of :data:`ENGINES`.
    query : str
        Search words; URL-encoded into the ``{query}`` placeholder.
    kind : {"foreground", "background"}
        Chooses the filter: transparency for foregrounds, large images for backgrounds.
    template : str, optional
        Replaces ``engine.SEARCH_URL`` (``--search-url`` / ``MATTING_SEARCH_URL``), e.g. to point
        the engine at a loopback copy of its result page. The filter is appended all the same.

    Returns
    -------
    str
        ``template.format(query=...)`` followed by ``?`` or ``&`` and the filter fragment.
    """
    url = (template or engine.SEARCH_URL).replace("{query}", quote_plus(query))
    fragment = engine.FILTERS[kind]
    if not fragment:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{fragment}"
