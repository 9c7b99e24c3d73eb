// Ed25519 signatures checked in the browser, for every page that checks them: tree heads
// (merkle.js) and the pickup desk offline (pickup-token.js). WebCrypto does it where the
// browser has Ed25519; where it has not, the vendored @noble/ed25519 does (loaded only then,
// from this server: api/static/vendor/README.md).

export const unb64url = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
};

// Which implementation checks signatures here: "webcrypto" or "noble" (pages show it).
export let ed25519Engine = "webcrypto";

async function verifyWithNoble(jwk, signature, message) {
  ed25519Engine = "noble";
  const noble = await import("/static/vendor/noble-ed25519.js");
  try {
    return await noble.verifyAsync(signature, message, unb64url(jwk.x));
  } catch {
    return false; // not a key or not a signature at all
  }
}

// true or false.
export async function verifyEd25519(jwk, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    return error.name === "NotSupportedError" ? verifyWithNoble(jwk, signature, message) : false;
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}
