#!/usr/bin/env node
// A Cloud Storage JSON-API emulator for ckptbeam's gs:// tests: firebase-tools' StorageEmulator, started directly.
//
//   TMPDIR=<dir> GCS_EMULATOR_PORT=9199 node gcs-emulator.js      (prints "gcs-emulator ready on http://HOST:PORT")
//
// `firebase emulators:start` cannot run offline (it downloads a rules runtime and wants Java 21), so this launcher
// runs the emulator class itself and fills the gaps between it and what the Java clients send:
//   1. security rules are never evaluated on the GCS JSON API (the admin layer), so the rules runtime is stubbed;
//   2. the emulator must be in firebase-tools' registry, or every request fails to build its own URLs;
//   3. multipart/related uploads: the Java client puts other headers before Content-Type in a part, which the stock
//      parser refuses; this one reads the part's headers in any order;
//   4. /batch/storage/v1 (multipart/mixed), which Beam's GcsUtil uses for rename (rewrite + delete), is answered
//      by running each inner request against the emulator itself;
//   5. rewriteTo/copyTo under /storage/v1/b/... is mapped to the /b/... route, the only one the emulator defines;
//   6. resumable uploads in several chunks: the stock PUT finalises the object on every chunk; a chunk whose
//      Content-Range does not end the object is appended and answered 308, as GCS does.
"use strict";
const http = require("http");
const path = require("path");

const lib = path.join(__dirname, "node_modules", "firebase-tools", "lib", "emulator");
const { StorageEmulator } = require(path.join(lib, "storage", "index.js"));
const { StorageRulesRuntime } = require(path.join(lib, "storage", "rules", "runtime.js"));
const multipart = require(path.join(lib, "storage", "multipart.js"));
const server = require(path.join(lib, "storage", "server.js"));
const { EmulatorRegistry } = require(path.join(lib, "registry.js"));

const HOST = process.env.GCS_EMULATOR_HOST || "127.0.0.1";
const PORT = Number(process.env.GCS_EMULATOR_PORT || 9199);
const CRLF = "\r\n";

// (1) No rules runtime: nothing on the JSON API evaluates rules.
StorageRulesRuntime.prototype.start = async function () {};
StorageRulesRuntime.prototype.stop = async function () {};
StorageEmulator.prototype.createRulesManager = function () {
  return { start: async () => ({ errors: [] }), stop: async () => {}, getRuleset: () => undefined };
};

// (3) A part's headers in any order, then a blank line, then its body.
multipart.parseObjectUploadMultipartRequest = function (contentTypeHeader, body) {
  const match = /boundary=("?)([^";]+)\1/i.exec(contentTypeHeader);
  if (!contentTypeHeader.startsWith("multipart/related") || !match) {
    throw new Error(`Bad content type. ${contentTypeHeader}`);
  }
  const parts = splitParts(body, match[2]);
  if (parts.length !== 2) {
    throw new Error(`Unexpected number of parts in request body: ${parts.length}`);
  }
  return { metadataRaw: parts[0].body.toString(), dataRaw: parts[1].body };
};

/** The parts of a multipart body: each with its header lines and its body bytes. */
function splitParts(body, boundary) {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    let start = at + delimiter.length;
    if (body.slice(start, start + 2).toString() === "--") {
      break; // closing delimiter
    }
    start += 2; // CRLF after the delimiter
    const next = body.indexOf(delimiter, start);
    if (next < 0) {
      break;
    }
    let end = next;
    if (body.slice(end - 2, end).toString() === CRLF) {
      end -= 2;
    }
    const part = body.slice(start, end);
    const headerEnd = part.indexOf(CRLF + CRLF);
    const headerText = headerEnd < 0 ? part.toString() : part.slice(0, headerEnd).toString();
    const partBody = headerEnd < 0 ? Buffer.alloc(0) : part.slice(headerEnd + 4);
    parts.push({ headers: headerText.split(CRLF).filter((l) => l.length > 0), body: partBody });
    at = next;
  }
  return parts;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Sends one HTTP request to the emulator itself; resolves with status, headers and body. */
function selfRequest(method, target, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port: PORT, method, path: target, headers }, (res) => {
      readBody(res).then((b) => resolve({ status: res.statusCode, message: res.statusMessage, headers: res.headers,
        body: b }), reject);
    });
    req.on("error", reject);
    if (body && body.length > 0) {
      req.write(body);
    }
    req.end();
  });
}

// (4) Batch: each part is an application/http request; the answer is one application/http response per part.
async function batch(req, res) {
  const match = /boundary=("?)([^";]+)\1/i.exec(req.headers["content-type"] || "");
  if (!match) {
    res.writeHead(400).end("batch request without a multipart boundary");
    return;
  }
  const body = await readBody(req);
  const responses = [];
  for (const part of splitParts(body, match[2])) {
    const contentId = (part.headers.find((h) => /^content-id:/i.test(h)) || "").replace(/^content-id:\s*/i, "");
    const inner = part.body.toString("latin1");
    const split = inner.indexOf(CRLF + CRLF);
    const head = (split < 0 ? inner : inner.slice(0, split)).split(CRLF);
    const innerBody = split < 0 ? Buffer.alloc(0) : Buffer.from(inner.slice(split + 4), "latin1");
    const [method, url] = head[0].split(" ");
    const headers = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    headers["content-length"] = String(innerBody.length);
    const target = new URL(url, `http://${HOST}:${PORT}`);
    const r = await selfRequest(method, target.pathname + target.search, headers, innerBody);
    responses.push({ contentId, r });
  }
  const boundary = `batch_ckptbeam_${Date.now()}`;
  const chunks = [];
  for (const { contentId, r } of responses) {
    chunks.push(Buffer.from(`--${boundary}${CRLF}Content-Type: application/http${CRLF}`
      + (contentId ? `Content-ID: response-${contentId}${CRLF}` : "") + CRLF
      + `HTTP/1.1 ${r.status} ${r.message || ""}${CRLF}`
      + `Content-Type: ${r.headers["content-type"] || "application/json"}${CRLF}`
      + `Content-Length: ${r.body.length}${CRLF}${CRLF}`));
    chunks.push(r.body);
    chunks.push(Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`));
  const out = Buffer.concat(chunks);
  res.writeHead(200, { "Content-Type": `multipart/mixed; boundary=${boundary}`, "Content-Length": out.length });
  res.end(out);
}

// (6) A resumable chunk that does not end the object: append, answer 308 with the bytes persisted so far.
async function resumableChunk(emulator, req, res, uploadId, range) {
  const body = await readBody(req);
  emulator.uploadService.continueResumableUpload(uploadId, body);
  res.writeHead(308, { Range: `bytes=0-${range.last}`, "Content-Length": 0 }).end();
}

/** Content-Range of a resumable PUT: "bytes FIRST-LAST/TOTAL" (TOTAL may be *), or "bytes *\/TOTAL". */
function parseContentRange(value) {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value || "");
  return m ? { first: Number(m[1]), last: Number(m[2]), total: m[3] === "*" ? -1 : Number(m[3]) } : null;
}

const originalCreateApp = server.createApp;
server.createApp = async function (projectId, emulator) {
  const inner = await originalCreateApp(projectId, emulator);
  return async function outer(req, res) {
    try {
      const url = new URL(req.url, `http://${HOST}:${PORT}`);
      if (req.method === "POST" && url.pathname === "/batch/storage/v1") {
        await batch(req, res);
        return;
      }
      if (/^\/storage\/v1\/b\/[^/]+\/o\/.+\/(rewriteTo|copyTo)\/b\//.test(url.pathname)) {
        req.url = req.url.slice("/storage/v1".length); // (5)
      }
      if (req.method === "PUT" && url.pathname.startsWith("/upload/storage/v1/b/") && url.searchParams.get("upload_id")) {
        const range = parseContentRange(req.headers["content-range"]);
        if (range && (range.total < 0 || range.last + 1 < range.total)) {
          await resumableChunk(emulator, req, res, url.searchParams.get("upload_id"), range);
          return;
        }
      }
      inner(req, res);
    } catch (e) {
      res.writeHead(500).end(String(e && e.stack || e));
    }
  };
};

async function main() {
  const emulator = new StorageEmulator({ projectId: "ckptbeam-test", host: HOST, port: PORT, auto_download: false });
  EmulatorRegistry.set(emulator.getName(), emulator); // (2)
  const info = emulator.getInfo();
  const app = await server.createApp("ckptbeam-test", emulator);
  await new Promise((resolve) => http.createServer(app).listen(info.port, info.host, resolve));
  console.log(`gcs-emulator ready on http://${info.host}:${info.port}`);
}

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
