// The desk's durable memory, in IndexedDB, so that a reload or a closed browser loses nothing:
//   meta    the desk's id and name, its copy of the desk bundle, notes from the last syncs
//   queue   hand-overs made offline, waiting to be sent (by Idempotency-Key)
//   handed  what this desk handed over (by order id), so it refuses a second hand-over itself
const NAME = "cloud-exchange-desk";
let opened = null;

function open() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("meta");
      db.createObjectStore("queue", { keyPath: "idempotency_key" });
      db.createObjectStore("handed", { keyPath: "order_id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

const done = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

// Resolves once the transaction is on disk ("strict": a hand-over the desk showed green
// must survive a power cut as the queue entry that will post it).
async function write(stores, work) {
  const db = await open();
  const tx = db.transaction(stores, "readwrite", { durability: "strict" });
  work(tx);
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export async function get(store, key) {
  const db = await open();
  return done(db.transaction(store).objectStore(store).get(key));
}

export async function all(store) {
  const db = await open();
  return done(db.transaction(store).objectStore(store).getAll());
}

export const put = (store, value, key) => write([store], (tx) => tx.objectStore(store).put(value, key));

export const remove = (store, keys) => write([store], (tx) => {
  for (const key of keys) tx.objectStore(store).delete(key);
});

// A hand-over made offline: queued to be sent, and remembered as handed over, together.
export const handOver = (item, record) => write(["queue", "handed"], (tx) => {
  tx.objectStore("queue").put(item);
  tx.objectStore("handed").put(record);
});
