// One receipt v1 checked in the browser, trusting nothing the server computed (ledger/README.md,
// "Receipts"; the same checks as ledger/receipts.py and `exchange receipt verify`).
import { headSignature, hex, leafHash, rootFromPath, unhex } from "/static/js/merkle.js";

const FORMAT = "cloud-exchange/receipt/v1";
const unbase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// Why the receipt fails ("pending", "department", "tree", "root", "unknown-key", "invalid",
// ...), or null when it holds: its bytes lead by the audit path to the root of a head of the
// same department, signed with a key of the published JWKS.
export async function receiptProblem(receipt) {
  if (receipt.format !== FORMAT) return "format";
  if (receipt.pending) return "pending";
  const bytes = unbase64(receipt.entry);
  const entry = JSON.parse(new TextDecoder().decode(bytes));
  const head = receipt.tree_head;
  const proof = receipt.inclusion_proof;
  if (entry.seq !== receipt.seq || entry.ledger_id !== receipt.ledger_id) return "entry";
  if (head.ledger_id !== entry.ledger_id) return "department";
  if (proof.tree_size !== head.tree_size || entry.seq > head.tree_size) return "tree";
  const root = await rootFromPath(entry.seq - 1, head.tree_size, await leafHash(bytes), proof.audit_path.map(unhex));
  if (root === null || hex(root) !== head.root_hash) return "root";
  const signature = await headSignature(head);
  return signature === "valid" ? null : signature;
}
