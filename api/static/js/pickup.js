// The pickup desk: the camera scanner, and focus kept in the code box for USB scanners.
// Without this file the desk still works: scan with a USB scanner or paste, then Enter.
import QrScanner from "/static/vendor/qr-scanner.min.js";

const form = document.getElementById("scan-form");
const input = document.getElementById("f-token");
const toggle = document.getElementById("camera-toggle");
const video = document.getElementById("camera");
const cameraError = document.getElementById("camera-error");
let scanner = null;
let last = "";
let lastAt = 0;

// After each answer, clear the box and put the cursor back for the next scan.
document.body.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.elt !== form) return;
  input.value = "";
  input.focus();
});

function submitScan(value) {
  const now = Date.now();
  // A code held in front of the camera is read many times a second: submit it once.
  if (value === last && now - lastAt < 4000) return;
  last = value;
  lastAt = now;
  input.value = value;
  form.requestSubmit();
}

async function startCamera() {
  video.hidden = false;
  // qr-scanner decodes with the browser's BarcodeDetector where present, else in a worker.
  scanner = new QrScanner(video, (result) => submitScan(result.data), {
    returnDetailedScanResult: true,
    // The library's region highlight is SVG with inline styles, which the CSP refuses;
    // the video's own outline (site.css) marks where to hold the code instead.
    highlightScanRegion: false,
    // A pickup token makes a dense code: scan most of the frame at up to 800 px, not the
    // library's default 400 px crop of the middle two thirds.
    calculateScanRegion: (v) => {
      const side = Math.round(Math.min(v.videoWidth, v.videoHeight) * 0.9);
      const scaled = Math.min(side, 800);
      return {
        x: Math.round((v.videoWidth - side) / 2),
        y: Math.round((v.videoHeight - side) / 2),
        width: side,
        height: side,
        downScaledWidth: scaled,
        downScaledHeight: scaled,
      };
    },
  });
  try {
    await scanner.start();
    toggle.textContent = toggle.dataset.stop;
    cameraError.hidden = true;
  } catch (error) {
    stopCamera();
    cameraError.hidden = false;
  }
}

function stopCamera() {
  if (scanner) {
    scanner.stop();
    scanner.destroy();
    scanner = null;
  }
  video.hidden = true;
  toggle.textContent = toggle.dataset.start;
}

toggle.addEventListener("click", () => (scanner ? stopCamera() : startCamera()));
QrScanner.hasCamera().then((has) => { toggle.hidden = !has; });
