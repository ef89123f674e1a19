"""Remote-write wire format: the v1/v2 protobuf encoders and decoders and their reference classes.

Knows nothing of queues, HTTP or files; the queue, the receivers and the demo
receiver all speak the protocol through it.
"""
