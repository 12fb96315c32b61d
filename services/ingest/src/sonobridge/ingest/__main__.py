"""`python -m sonobridge.ingest [serve|migrate]`, from the spec the node also runs."""

import sys

from sonobridge.common.service import ServiceSpec
from sonobridge.ingest.settings import Settings

SPEC = ServiceSpec.of("ingest", Settings, http_port=8081, grpc_port=50061)
main = SPEC.main

if __name__ == "__main__":
    sys.exit(main())
