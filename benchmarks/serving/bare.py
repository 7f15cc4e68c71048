"""The baseline of benchmarks/serving: a bare single-process model server, what a user
writes by hand before any serving product.

    <pytorch env python> bare.py MODEL.pt PORT

Loads the TorchScript file, then listens on 127.0.0.1:PORT (tornado, HTTP/1.1
keep-alive) and answers ``POST /v1/models/<any>:predict`` with ``{"instances": rows}``
by ``{"predictions": …}``: JSON in, the model under ``torch.inference_mode()``, JSON out,
all on the one event-loop thread, the framework's default threads. No auth, no checks
beyond "is this JSON with instances", no balancer, no batching.
"""

from __future__ import annotations

import json
import sys

import torch
import tornado.ioloop
import tornado.web


def make_app(model: torch.jit.ScriptModule) -> tornado.web.Application:
    class Predict(tornado.web.RequestHandler):
        def post(self, _name: str) -> None:
            try:
                rows = json.loads(self.request.body)["instances"]
                x = torch.tensor(rows, dtype=torch.float32)
            except (ValueError, KeyError, TypeError) as e:
                self.set_status(400)
                self.finish({"error": str(e)})
                return
            with torch.inference_mode():
                out = model(x)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"predictions": out.tolist()}))

    return tornado.web.Application([(r"/v1/models/([^/:]+):predict", Predict)])


def main() -> None:
    model = torch.jit.load(sys.argv[1], map_location="cpu").eval()
    make_app(model).listen(int(sys.argv[2]), address="127.0.0.1")
    print("listening", flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
