// Loaded into configurable-http-proxy with `node --require` (studiohub.configurer.update_proxy).
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
