"""Reference protobuf messages of both remote-write protocols.

``remote_v1_pb2`` (package ``prometheus``) and ``remote_v2_pb2`` (package
``io.prometheus.write.v2``) are generated from the ``.proto`` files here by
``generate.py`` and committed. The hot-path encoder does not use them; the
decoder and the tests do.
"""
