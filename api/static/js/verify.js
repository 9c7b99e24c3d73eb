// Re-checks a ledger entry's inclusion proof in the browser, trusting nothing the server
// computed: the leaf hash from the canonical bytes, the root from the RFC 9162 audit path,
// and the tree head's Ed25519 signature with the key published at /api/keys.
import { unb64url, verifyEd25519 } from "/static/js/ed25519.js";

const data = JSON.parse(document.getElementById("proof-data").textContent);
const out = document.getElementById("browser-check");

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));
const concat = (...parts) => {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return all;
};
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

// RFC 9162 section 2.1.3.2: the root an audit path leads to from a leaf.
async function rootFromPath(index, size, leaf, path) {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

// ledger/treehead.py: the bytes a tree head's signature covers.
function signedBytes(head, timestampUs) {
  const domain = new TextEncoder().encode("cloud-exchange/tree-head/v1\u0000");
  const lid = new TextEncoder().encode(head.ledger_id);
  const numbers = new DataView(new ArrayBuffer(2 + 8 + 8));
  numbers.setUint16(0, lid.length);
  numbers.setBigUint64(2, BigInt(head.tree_size));
  numbers.setBigUint64(10, BigInt(timestampUs));
  const raw = new Uint8Array(numbers.buffer);
  return concat(domain, raw.slice(0, 2), lid, raw.slice(2, 10), unhex(head.root_hash), raw.slice(10));
}

async function signatureValid(head, timestampUs) {
  const jwks = await (await fetch("/api/keys")).json();
  const jwk = jwks.keys.find((k) => k.kid === head.key_id);
  if (!jwk) return false;
  return verifyEd25519(jwk, unb64url(head.signature), signedBytes(head, timestampUs));
}

async function check() {
  out.textContent = out.dataset.checking;
  const leaf = await leafHash(unhex(data.canonical_hex));
  const root = await rootFromPath(data.leaf_index, data.tree_size, leaf, data.path.map(unhex));
  const included = hex(leaf) === data.leaf_hash && root !== null && hex(root) === data.root_hash
    && data.head.root_hash === data.root_hash && data.head.tree_size === data.tree_size;
  const signature = included ? await signatureValid(data.head, data.timestamp_us) : false;
  const ok = included && signature !== false;
  out.className = "notice " + (ok ? "ok" : "error");
  out.dataset.verified = ok ? "yes" : "no";
  out.textContent = !ok ? out.dataset.bad : signature === null ? out.dataset.okNoSignature : out.dataset.ok;
}

check().catch(() => {
  out.className = "notice error";
  out.dataset.verified = "no";
  out.textContent = out.dataset.bad;
});
