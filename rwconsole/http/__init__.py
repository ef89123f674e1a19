"""The HTTP stack shared by remote write, scraping and the receivers.

Client transports (``transport``: the lean keep-alive HTTP/1.1 of ``http1``
and httpx's pools, one interface, one redirect policy in ``redirect``), TLS
(``tls``), proxy routing (``proxy``), every authentication method (``auth``
and the token sources ``oauth2``, ``azuread``, ``sigv4``) and the small
HTTP/1.1 server (``server``). Nothing here knows about remote write, sources,
the engine or the console.
"""
