"""Test harness around a real OCI registry (CNCF distribution), independent of portside.

Nothing in this package imports ``portside``: the harness is the second, independent side
that client tests cross-check the client against (together with the real ``skopeo``).

Modules, one concept each:

- ``ports``: free loopback ports and bounded waiting.
- ``recording``: recorded HTTP requests and a threaded loopback server base.
- ``tls``: a test CA and a server certificate for 127.0.0.1/localhost.
- ``tokens``: a Docker-style token issuer (JWT ES256 with x5c) the tests run themselves.
- ``registry``: ``docker-registry serve`` on a free port, in every auth/TLS variant.
- ``data``: the Docker Official Images tag data copied into ``tests/data``.
- ``seed``: deterministic tiny images, pushed over HTTP or written into storage directly.
- ``skopeo``: the real skopeo, for cross-checks.
- ``proxy``: a fault-injecting proxy in front of the registry, and a recording "other host".
- ``dockerconfig``: DOCKER_CONFIG directories and credential helper scripts.
- ``project``: a tiny pure-Python project (``hello``) to build images from.
- ``cli``: ``python -m portside`` run as a user runs it (a subprocess).
"""
