// A pickup token judged at the desk without the server, with the desk's copy of its bundle:
// the same checks as exchange/pickup.py (signature by key id, audience, expiry, department),
// then what the copy and this desk's own record know (revoked, handed over already).
// Each refusal has the name of the server's error, or one of the desk's own.
import { unb64url, verifyEd25519 } from "/static/js/ed25519.js";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// The token alone, from the token or the whole URL a scanner read (pickup.token_from_scan).
export function tokenFromScan(scanned) {
  let text = scanned.trim();
  if (text.includes("/p/")) text = text.slice(text.lastIndexOf("/p/") + 3);
  return text.split("?")[0].split("#")[0].replace(/^\/+|\/+$/g, "");
}

// The claims, unverified: what an order the desk handed over is recorded under.
export function claimsOf(token) {
  try {
    return JSON.parse(decoder.decode(unb64url(token.split(".")[1])));
  } catch (notAToken) {
    return null;
  }
}

const refuse = (reason, extra = {}) => ({ ok: false, reason, ...extra });

// copy: {department_id, keys: {kid: jwk}, orders: {id: order}, revocations: {id: revocation}}
// handedHere(orderId): this desk's record of handing the order over, if any.
export async function judge(scanned, copy, handedHere, nowMs) {
  const token = tokenFromScan(scanned);
  const parts = token.split(".");
  if (parts.length !== 3 || token.length > 2048) return refuse("PickupTokenMalformed");
  let header;
  let claims;
  try {
    header = JSON.parse(decoder.decode(unb64url(parts[0])));
    claims = JSON.parse(decoder.decode(unb64url(parts[1])));
  } catch (notJson) {
    return refuse("PickupTokenMalformed");
  }
  if (header === null || typeof header !== "object" || claims === null || typeof claims !== "object") {
    return refuse("PickupTokenMalformed");
  }
  if (header.alg !== "EdDSA" || typeof header.kid !== "string") return refuse("PickupTokenSignatureInvalid");
  if (!copy) return refuse("NoCopy");
  const jwk = copy.keys[header.kid];
  if (!jwk) return refuse("UnknownKey");
  let signature;
  try {
    signature = unb64url(parts[2]);
  } catch (notBase64) {
    return refuse("PickupTokenMalformed");
  }
  const valid = await verifyEd25519(jwk, signature, encoder.encode(`${parts[0]}.${parts[1]}`));
  if (!valid) return refuse("PickupTokenSignatureInvalid");
  const strings = ["sub", "dep", "jti"].every((name) => typeof claims[name] === "string");
  if (!strings || claims.aud !== "pickup" || !Number.isInteger(claims.exp)) return refuse("PickupTokenMalformed");
  if (nowMs >= claims.exp * 1000) return refuse("PickupTokenExpired");
  if (claims.dep !== copy.department_id) return refuse("PickupTokenForeignDepartment");
  const here = await handedHere(claims.sub);
  if (here) return refuse("HandedOverHere", { when: here.scanned_at });
  const revoked = copy.revocations[claims.sub];
  if (revoked && revoked.status === "fulfilled") return refuse("AlreadyPickedUp", { when: revoked.at, who: revoked.by || "" });
  if (revoked) return refuse("PickupTokenRevoked");
  const order = copy.orders[claims.sub];
  if (order && order.jti !== claims.jti) return refuse("PickupTokenRevoked");
  // An order placed after the copy was taken is not in it: its signature is what vouches.
  return { ok: true, token, claims, order: order || null };
}
