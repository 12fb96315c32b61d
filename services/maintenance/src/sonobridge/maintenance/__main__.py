"""`python -m sonobridge.maintenance [serve|migrate]`, from the spec the node also runs."""

import sys

from sonobridge.common.service import ServiceSpec
from sonobridge.maintenance.settings import Settings

SPEC = ServiceSpec.of("maintenance", Settings, http_port=8084, grpc_port=50064)
main = SPEC.main

if __name__ == "__main__":
    sys.exit(main())
