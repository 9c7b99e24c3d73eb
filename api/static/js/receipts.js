// My receipts, checked by the employee's own browser (ledger/README.md, "Receipts"): each
// receipt's entry bytes, audit path and signed head, as `exchange receipt verify` does; and
// the log itself: the newest head this browser verified, kept per department, must be a
// prefix of today's head (RFC 9162 consistency proof), or the log was rewritten or forked.
import { consistent, headSignature, unhex } from "/static/js/merkle.js";
import { receiptProblem } from "/static/js/receipt.js";

const receipts = JSON.parse(document.getElementById("receipts-data").textContent);
const logCheck = document.getElementById("log-check");

async function checkReceipts() {
  for (const receipt of receipts) {
    const badge = document.querySelector(`li[data-seq="${receipt.seq}"] .receipt-check`);
    if (!badge) continue;
    let problem;
    try {
      problem = await receiptProblem(receipt);
    } catch {
      problem = "malformed";
    }
    if (problem === "pending") continue;
    badge.classList.remove("pending");
    badge.classList.add(problem ? "bad" : "ok");
    badge.dataset.verified = problem ? "no" : "yes";
    if (problem) badge.dataset.problem = problem;
    badge.textContent = problem ? badge.dataset.bad : badge.dataset.ok;
  }
}

function say(kind, message, sizes = {}) {
  logCheck.className = `notice ${kind}`;
  logCheck.dataset.state = message;
  logCheck.textContent = logCheck.dataset[message].replace("{old}", sizes.old ?? "").replace("{size}", sizes.size ?? "");
}

async function checkLog() {
  const ledger = logCheck.dataset.ledger;
  if (!ledger) return;
  say("info", "checking");
  const base = `/api/departments/${encodeURIComponent(ledger)}/ledger`;
  const response = await fetch(`${base}/tree-head`, { cache: "no-store" });
  if (!response.ok) throw new Error(`tree head: ${response.status}`);
  const head = await response.json();
  if (head.ledger_id !== ledger || (await headSignature(head)) !== "valid") return say("error", "badHead");
  const key = `exchange.verified-head.${ledger}`;
  const kept = JSON.parse(localStorage.getItem(key) || "null");
  const sizes = { old: kept?.tree_size, size: head.tree_size };
  if (kept && kept.tree_size > 0) {
    let grew;
    if (kept.tree_size > head.tree_size) {
      grew = false; // a log never shrinks
    } else if (kept.tree_size === head.tree_size) {
      grew = kept.root_hash === head.root_hash;
    } else {
      const proof = await fetch(`${base}/proofs/consistency?first=${kept.tree_size}&second=${head.tree_size}`, { cache: "no-store" });
      if (!proof.ok) throw new Error(`consistency proof: ${proof.status}`);
      const path = (await proof.json()).consistency_path.map(unhex);
      grew = await consistent(kept.tree_size, head.tree_size, unhex(kept.root_hash), unhex(head.root_hash), path);
    }
    // On a failure the old head stays: the warning shows on every visit until someone acts.
    if (!grew) return say("error", "fork", sizes);
    say("ok", "ok", sizes);
  } else if (head.tree_size > 0) {
    say("info", "first", sizes);
  }
  if (head.tree_size > 0) localStorage.setItem(key, JSON.stringify(head));
}

checkReceipts();
checkLog().catch(() => say("warn", "error"));
