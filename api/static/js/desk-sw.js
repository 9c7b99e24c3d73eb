// The pickup desk's service worker: it keeps the desk's page and every file the page loads,
// so that the desk opens and works with no network. Served at /coord/desk-sw.js (so that its
// scope may be /coord/pickup) by api/pages/desk.py, which puts VERSION and FILES before this
// text: a new version of any file is a new worker, which fetches them all anew.
/* global VERSION, FILES */
const CACHE = `desk-${VERSION}`;
const PAGE = "/coord/pickup";
const PAGE_TIMEOUT_MS = 5000; // weak Wi-Fi: after this, the kept page rather than a blank wait

async function keepPage(cache, response) {
  // The page as the signed-in coordinator sees it; never a redirect to the sign-in page.
  if (response.ok && !response.redirected && response.type === "basic") await cache.put(PAGE, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(FILES);
    await keepPage(cache, await fetch(PAGE, { cache: "no-store" }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("desk-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The page: from the network while there is one (and kept for later), else the kept copy.
async function page(request) {
  const cache = await caches.open(CACHE);
  // A navigation request cannot take an abort signal; the answer that comes too late is
  // still kept for next time.
  const fromNetwork = fetch(request).then(async (response) => {
    await keepPage(cache, response.clone());
    return response;
  });
  const tooLate = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), PAGE_TIMEOUT_MS));
  try {
    return await Promise.race([fromNetwork, tooLate]);
  } catch (offline) {
    return (await cache.match(PAGE)) || Response.error();
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(page(request));
  } else if (FILES.includes(url.pathname)) {
    // The files change only with a new version of this worker.
    event.respondWith(caches.match(url.pathname).then((kept) => kept || fetch(request)));
  }
  // Everything else (the API, the sync) goes to the network as it would without a worker.
});
