"""Bing Images: search URL, filters and result-page extraction.

Each result is an ``a.iusc`` anchor whose ``m`` attribute holds JSON metadata: ``murl`` is the
full-size image, ``purl`` the page showing it and ``turl`` the thumbnail (used only when a tile
has no ``murl``).
"""

NAME = "bing"
SEARCH_URL = "https://www.bing.com/images/search?q={query}&form=HDRSC2&first=1"
FILTERS = {
    "foreground": "qft=+filterui:photo-transparent",
    "background": "qft=+filterui:imagesize-large",
}
CONSENT_BUTTONS = ("button#bnp_btn_reject", "button#bnp_btn_accept")
MORE_BUTTONS = ("a.btn_seemore", ".mm_seemore a", "input[value='See more images']")

EXTRACT_JS = r"""
const done = arguments[arguments.length - 1];
const out = [];
for (const anchor of document.querySelectorAll('a.iusc')) {
  let meta = {};
  try { meta = JSON.parse(anchor.getAttribute('m') || '{}'); } catch (error) { continue; }
  out.push({image: meta.murl || null, thumb: meta.turl || null, page: meta.purl || null});
}
done(out);
"""
