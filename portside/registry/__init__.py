"""The OCI distribution client, in layers you can name.

``challenge`` (WWW-Authenticate parsing) and ``credentials`` (where secrets come from)
feed ``auth`` (basic, bearer tokens, refresh tokens); ``transport`` sends requests
(schemes, TLS, retries, byte caps, redirects); ``client`` holds the operations (tags,
manifests, blobs, uploads, referrers). ``manifest`` is the data model, free of I/O.

Nothing is imported here on purpose: a cache hit in the command line must not pay for
importing the network stack.
"""
