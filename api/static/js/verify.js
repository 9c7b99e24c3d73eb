// Re-checks a ledger entry's inclusion proof in the browser, trusting nothing the server
// computed: the leaf hash from the canonical bytes, the root from the RFC 9162 audit path,
// and the tree head's Ed25519 signature with the key published at /api/keys.
import { headSignature, hex, leafHash, rootFromPath, unhex } from "/static/js/merkle.js";

const data = JSON.parse(document.getElementById("proof-data").textContent);
const out = document.getElementById("browser-check");

async function check() {
  out.textContent = out.dataset.checking;
  const leaf = await leafHash(unhex(data.canonical_hex));
  const root = await rootFromPath(data.leaf_index, data.tree_size, leaf, data.path.map(unhex));
  const included = hex(leaf) === data.leaf_hash && root !== null && hex(root) === data.root_hash
    && data.head.root_hash === data.root_hash && data.head.tree_size === data.tree_size;
  const ok = included && (await headSignature(data.head)) === "valid";
  out.className = "notice " + (ok ? "ok" : "error");
  out.dataset.verified = ok ? "yes" : "no";
  out.textContent = ok ? out.dataset.ok : out.dataset.bad;
}

check().catch(() => {
  out.className = "notice error";
  out.dataset.verified = "no";
  out.textContent = out.dataset.bad;
});
