"""DuckDuckGo Images: search URL, filters and result-page extraction.

A tile (``.tile--img``) carries only a thumbnail, proxied through
``external-content.duckduckgo.com/iu/?u=<original>``, and a link to the page (``a.tile--img__sub``).
The full-size URL appears in the detail pane (``img.detail__media__img-highres``) once the tile
is clicked, so the extractor clicks each tile it has not seen, waits for the pane to show a new
image, and remembers the answer on the tile (``data-matting-image``) so it never clicks it again.
Proxy URLs are unwrapped to the original image's URL.
"""

NAME = "duckduckgo"
SEARCH_URL = "https://duckduckgo.com/?q={query}&iax=images&ia=images"
FILTERS = {"foreground": "iaf=type:transparent", "background": "iaf=size:Large"}
CONSENT_BUTTONS = ()
MORE_BUTTONS = ()

EXTRACT_JS = r"""
const budget = arguments[0];
const done = arguments[arguments.length - 1];
const unproxy = (value) => {
  if (!value) return null;
  try {
    const url = new URL(value, location.href);
    const original = url.searchParams.get('u');
    return url.pathname.endsWith('/iu/') && original ? original : url.href;
  } catch (error) { return null; }
};
const highres = () => {
  const img = document.querySelector('img.detail__media__img-highres');
  return img ? img.getAttribute('src') : null;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  const out = [];
  let clicked = 0;
  for (const tile of document.querySelectorAll('.tile--img')) {
    if (tile.dataset.mattingImage === undefined && clicked < budget) {
      clicked += 1;
      const before = highres();
      (tile.querySelector('img') || tile).click();
      for (let waited = 0; waited < 2000 && highres() === before; waited += 25) await sleep(25);
      const after = highres();
      tile.dataset.mattingImage = after !== before ? (unproxy(after) || '') : '';
    }
    if (tile.dataset.mattingImage === undefined) continue;
    const img = tile.querySelector('img.tile--img__img');
    const link = tile.querySelector('a.tile--img__sub');
    out.push({image: tile.dataset.mattingImage || null,
              thumb: img ? unproxy(img.getAttribute('data-src') || img.getAttribute('src')) : null,
              page: link ? link.href : null});
  }
  done(out);
})();
"""
