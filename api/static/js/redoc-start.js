// Starts the vendored Redoc on /schema with the schema URL the page names (no inline script).
const container = document.getElementById("redoc-container");
Redoc.init(container.dataset.specUrl, {}, container);
