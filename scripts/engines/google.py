"""Google Images: search URL, filters and result-page extraction.

Full-size URLs come from two places, both read without clicking: result anchors whose ``href``
is an ``/imgres?imgurl=...&imgrefurl=...`` link, and the ``["https://...", height, width]``
triples in the page's inline ``AF_initDataCallback`` script data. Thumbnails (on gstatic.com) are
never used: they are small opaque JPEGs, useless as foregrounds or backgrounds.
"""

NAME = "google"
SEARCH_URL = "https://www.google.com/search?q={query}&udm=2&hl=en"
FILTERS = {"foreground": "tbs=ic:trans", "background": "tbs=isz:l"}
# "Reject all" first: it leads to the same results without storing a consent cookie for ads.
CONSENT_BUTTONS = ("button#W0wltc", "button#L2AGLb", "form[action*='consent'] button")
MORE_BUTTONS = ("input.mye4qd", "input[value='Show more results']")

EXTRACT_JS = r"""
const done = arguments[arguments.length - 1];
const out = [];
for (const anchor of document.querySelectorAll('a[href*="imgurl="]')) {
  const link = new URL(anchor.href, location.href);
  out.push({image: link.searchParams.get('imgurl'), thumb: null,
            page: link.searchParams.get('imgrefurl')});
}
const triple = /\["(https?:\/\/[^"]+)",(\d+),(\d+)\]/g;
for (const script of document.querySelectorAll('script')) {
  for (const match of (script.textContent || '').matchAll(triple)) {
    let url;
    try { url = JSON.parse('"' + match[1] + '"'); } catch (error) { continue; }
    const host = new URL(url).hostname;
    if (host.endsWith('gstatic.com') || host.includes('google.')) continue;
    out.push({image: url, thumb: null, page: null});
  }
}
done(out);
"""
