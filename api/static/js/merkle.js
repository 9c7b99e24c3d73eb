// RFC 9162 Merkle proofs and the service's signed tree heads, checked in the browser with
// WebCrypto, for every page that checks them: an auditor's entry (verify.js) and an
// employee's receipts and log check (receipts.js). The server's side is ledger/merkle.py
// and ledger/treehead.py; the formats are in ledger/README.md.
import { unb64url, verifyEd25519 } from "/static/js/ed25519.js";

export const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
export const unhex = (text) => new Uint8Array((text.match(/../g) || []).map((h) => parseInt(h, 16)));
const concat = (...parts) => {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return all;
};
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
export const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

// RFC 9162 section 2.1.3.2: the root an audit path leads to from a leaf; null if the path
// has the wrong shape.
export async function rootFromPath(index, size, leaf, path) {
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

// RFC 9162 section 2.1.4.2: whether the log of `second` entries (root secondRoot) extends
// the log of `first` entries (root firstRoot), by the consistency path between them.
export async function consistent(first, second, firstRoot, secondRoot, path) {
  if (!(first > 0 && first <= second)) return false;
  if (first === second) return path.length === 0 && hex(firstRoot) === hex(secondRoot);
  const nodes = (first & (first - 1)) === 0 ? [firstRoot, ...path] : [...path];
  if (nodes.length === 0) return false;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  let fr = nodes[0];
  let sr = nodes[0];
  for (const c of nodes.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hex(fr) === hex(firstRoot) && hex(sr) === hex(secondRoot);
}

// "2026-06-01T08:00:00.123456Z" → microseconds since 1970, exactly (a Date keeps only ms).
const timestampUs = (text) => BigInt(Date.parse(text.slice(0, 19) + "Z")) * 1000n + BigInt(text.slice(20, 26));

// The bytes a tree head's signature covers (ledger/treehead.py).
function signedBytes(head) {
  const domain = new TextEncoder().encode("cloud-exchange/tree-head/v1\u0000");
  const lid = new TextEncoder().encode(head.ledger_id);
  const numbers = new DataView(new ArrayBuffer(2 + 8 + 8));
  numbers.setUint16(0, lid.length);
  numbers.setBigUint64(2, BigInt(head.tree_size));
  numbers.setBigUint64(10, timestampUs(head.timestamp));
  const raw = new Uint8Array(numbers.buffer);
  return concat(domain, raw.slice(0, 2), lid, raw.slice(2, 10), unhex(head.root_hash), raw.slice(10));
}

let published = null;
export const publishedKeys = () => (published ||= fetch("/api/keys").then((r) => r.json()));

// "valid", "invalid", or "unknown-key" (no key of that id in the published JWKS).
export async function headSignature(head) {
  const jwk = (await publishedKeys()).keys.find((k) => k.kid === head.key_id);
  if (!jwk) return "unknown-key";
  return (await verifyEd25519(jwk, unb64url(head.signature), signedBytes(head))) ? "valid" : "invalid";
}
