"""What the gateway does for a request or on its own: access, release, ingest, erasure, sweeps."""
