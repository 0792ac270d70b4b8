"""The seqboltz gRPC generation service (torch-free). Not built yet: see the service issue."""
