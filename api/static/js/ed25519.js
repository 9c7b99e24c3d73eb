// Ed25519 signatures checked in the browser, for every page that checks them: the auditor's
// inclusion proof (verify.js) and the pickup desk offline (pickup-token.js). WebCrypto does it
// where the browser has Ed25519; where it has not, verifyEd25519 answers null, and this is the
// one place where a vendored implementation would take over.

export const unb64url = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
};

// true or false; null when this browser cannot check Ed25519 signatures.
export async function verifyEd25519(jwk, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    return error.name === "NotSupportedError" ? null : false; // else: not a key at all
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}
