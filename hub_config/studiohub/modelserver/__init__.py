"""The replica program of model endpoints: ``python -m studiohub.modelserver``.

Run by an image environment's own Python (:mod:`studiohub.sdk` copies this package into
each environment), one process per replica, on a unix socket behind the hub's balancer.
It speaks TensorFlow Serving's REST API and the Open Inference Protocol (KServe V2).

Modules: :mod:`.formats` (which format a model folder is, by names only; the hub imports
it too), :mod:`.tensors` (datatypes and checks of request values, pure),
:mod:`.protocols` (routes and both protocols' bodies, pure), :mod:`.batching` (queued
requests joined into one call, ``--batch-max``, pure), :mod:`.runtimes` (one per format,
the framework imported lazily), :mod:`.server` (tornado, the command line).
This file imports nothing, so ``from studiohub.modelserver import formats`` stays light.
"""
