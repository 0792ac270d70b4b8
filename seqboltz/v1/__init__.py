"""Generated protobuf and gRPC code of ``proto/seqboltz/v1`` (``python -m serving.codegen``)."""
