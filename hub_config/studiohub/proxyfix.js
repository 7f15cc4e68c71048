// Loaded into configurable-http-proxy with `node --require` (studiohub.configurer.update_proxy).
// Five changes, none to where it routes:
//
// 1. A URL path that is not valid UTF-8 is a 400 (below).
// 2. A quiet start. The proxy starts before the hub listens and before the hub has added
//    any route; a request then (a browser tab of a server that outlived a hub restart
//    polls every few seconds) was a 404 logged as an error, and the proxy's fetch of the
//    hub's error page for it failed with an ECONNREFUSED stack. While the proxy has no
//    route at all, a request is answered 503 "StudioHub is starting" (Retry-After) and
//    logged at debug level; once the hub has added its routes every answer is the
//    proxy's own. And an error from the network (ECONNREFUSED, ECONNRESET, EHOSTUNREACH,
//    ETIMEDOUT) is logged as one line, its message, as the proxy already does for a
//    backend's: the error is still an error line, without the stack.
// 3. Kept-alive connections to unix-socket targets (below): the proxy gives them no
//    agent, so each request is a new connection with "Connection: close", which the
//    target closes once it has answered; a target that answers before the proxy has
//    finished writing (a quick refusal) then made the proxy's last write fail (EPIPE)
//    and the caller got the proxy's 503 instead of the answer.
// 4. No debug line is formatted when the log level is above debug (below): the proxy
//    logs one per request, which winston formats (a timestamp, printf) before its
//    transport drops it: 7 % of the proxy's CPU per request (a --cpu-prof of
//    benchmarks/serving's requests, docs/benchmarks.md).
// 5. A model endpoint's call that the proxy could not deliver (HAProxy's fast lane
//    restarting after a crash: ECONNREFUSED on its socket for a few seconds) is answered
//    503 in the protocols' shape, {"error": ...}, with Retry-After, as the models
//    service's own 503s are; it was the hub's HTML error page, which clients of
//    TF Serving and the Open Inference Protocol cannot read.
//
// configurable-http-proxy 5.x looks a request's route up with
// decodeURIComponent(path), which throws URIError on a path that is not valid
// percent-encoded UTF-8 (e.g. /services/sharing/api/shares/%ED%A0%80, a lone surrogate);
// the proxy then answers its own 500 page before the hub or any service sees the
// request. Such a request is the client's mistake: answer it here with a 400 and a JSON
// {status, message}, as every StudioHub endpoint does, and hand every other request to
// the proxy unchanged.
"use strict";

const fs = require("fs");
const path = require("path");

const bin = fs.realpathSync(process.argv[1]);
const { ConfigurableProxy } = require(path.join(path.dirname(path.dirname(bin)), "lib",
  "configproxy.js"));

const BODY = JSON.stringify({
  status: 400,
  message: "the URL path is not valid percent-encoded UTF-8: check the link or the request",
});

function badPath(url) {
  try {
    decodeURIComponent(new URL(url, "http://localhost").pathname);
    return false;
  } catch (e) {
    return e instanceof URIError;
  }
}

const handleProxy = ConfigurableProxy.prototype.handleProxy;
ConfigurableProxy.prototype.handleProxy = function (kind, req, res) {
  quietDebug(this.log);
  if (!badPath(req.url)) {
    return handleProxy.apply(this, arguments);
  }
  if (kind === "ws") {  // res is the upgrade's socket
    res.end("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n" +
      "Connection: close\r\n\r\n" + BODY);
    return Promise.resolve();
  }
  res.writeHead(400, { "Content-Type": "application/json" });
  res.end(BODY);
  return Promise.resolve();
};

// --- 2. A quiet start ---------------------------------------------------------------

const NETWORK_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ETIMEDOUT"]);
const STARTING = JSON.stringify({
  status: 503,
  message: "StudioHub is starting: try again in a few seconds",
});

// A logger whose error lines name a network error by its message, without its stack.
function quietNetworkErrors(log) {
  if (log.studiohubQuiet) {
    return;
  }
  const error = log.error.bind(log);
  log.error = function (format, ...args) {
    const shown = args.map((a) => (a instanceof Error && NETWORK_ERRORS.has(a.code) ? a.message : a));
    return error(format, ...shown);
  };
  log.studiohubQuiet = true;
}

function answerStarting(kind, res) {
  if (kind === "ws") {  // res is the upgrade's socket
    res.end("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n" +
      "Content-Type: application/json\r\nConnection: close\r\n\r\n" + STARTING);
    return;
  }
  if (res.headersSent || res.writableEnded) {
    return;
  }
  res.writeHead(503, { "Content-Type": "application/json", "Retry-After": "2" });
  res.end(STARTING);
}

// --- 5. An endpoint's call not delivered: the protocols' error shape -----------------

// /services/models/<endpoint>/v1/... or .../v2/... under any base URL (the names
// modelserver.protocols and serving.model accept).
// Only a socket that is not there or refuses: the balancer is restarting. An error after
// the request was taken (EPIPE: HAProxy answered 408 to a slow upload and closed) is not.
const NOT_LISTENING = new Set(["ECONNREFUSED", "ENOENT"]);
const ENDPOINT_CALL = /\/services\/models\/[a-z][a-z0-9-]{0,39}\/v[12](\/|$)/;
const UNREACHABLE = JSON.stringify({
  error: "the endpoint is not reachable right now (its balancer is restarting): try " +
    "again in a few seconds",
});

function answerEndpointUnreachable(res) {
  if (res.headersSent || res.writableEnded) {
    return;
  }
  res.writeHead(503, { "Content-Type": "application/json", "Retry-After": "2" });
  res.end(UNREACHABLE);
}

const handleProxyError = ConfigurableProxy.prototype.handleProxyError;
ConfigurableProxy.prototype.handleProxyError = function (code, kind, req, res, e) {
  quietNetworkErrors(this.log);
  if (code === 503 && kind !== "ws" && res && e && NOT_LISTENING.has(e.code) &&
      ENDPOINT_CALL.test(req.url.split("?", 1)[0])) {
    this.log.error("%s %s %s %s", code, req.method, req.url.split("?", 1)[0],
      e && NETWORK_ERRORS.has(e.code) ? e.message : e);
    answerEndpointUnreachable(res);
    return;
  }
  if (code !== 404 || e || !res) {
    return handleProxyError.apply(this, arguments);
  }
  // 404 is "no route for this path": before the hub's first routes, it is "starting".
  const args = arguments;
  return this._routes.getAll().then((routes) => {
    if (Object.keys(routes).length > 0) {
      return handleProxyError.apply(this, args);
    }
    this.log.debug("503 %s %s: no routes yet (the hub is starting)", req.method,
      req.url.split("?", 1)[0]);
    answerStarting(kind, res);
  });
};

// --- 3. Kept-alive connections to unix-socket targets ----------------------------------

const http = require("http");

// Idle connections are closed here after 5 s, well before the target's own keep-alive
// timeout (HAProxy's fast lane: 30 s), so a request never reuses one it is closing; and
// an HAProxy worker that a reload replaced, which keeps an idle connection open until
// its next request, is gone within 5 s of the reload (the models service waits for it
// before it stops a retired version's replicas).
const unixAgent = new http.Agent({ keepAlive: true, timeout: 5000 });
const proxyOptsForTarget = ConfigurableProxy.prototype.proxyOptsForTarget;
ConfigurableProxy.prototype.proxyOptsForTarget = function (target) {
  const options = proxyOptsForTarget.apply(this, arguments);
  if (options.target && options.target.socketPath && !options.agent) {
    options.agent = unixAgent;
  }
  return options;
};

// --- 4. No debug lines formatted for nothing ------------------------------------------

// The level is set once, from --log-level, when the proxy starts.
function quietDebug(log) {
  if (log.studiohubDebugChecked) {
    return;
  }
  log.studiohubDebugChecked = true;
  if (typeof log.isDebugEnabled === "function" && !log.isDebugEnabled()) {
    log.debug = function () {};
  }
}
