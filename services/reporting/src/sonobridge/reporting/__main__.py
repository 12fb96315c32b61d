"""`python -m sonobridge.reporting [serve|migrate]`, from the spec the node also runs."""

import sys

from sonobridge.common.service import ServiceSpec
from sonobridge.reporting.settings import Settings

SPEC = ServiceSpec.of("reporting", Settings, http_port=8083, grpc_port=50063)
main = SPEC.main

if __name__ == "__main__":
    sys.exit(main())
