"""`python -m sonobridge.inference [serve|migrate|validation-report|shadow-report ...]`."""

from __future__ import annotations

import sys

from sonobridge.common.service import ServiceSpec
from sonobridge.inference.settings import Settings

SPEC = ServiceSpec.of("inference", Settings, http_port=8082, grpc_port=50062)


def main(argv: list[str] | None = None) -> int:
    """Serve, migrate, write a validation report or the shadow report (`sonobridge-inference`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["validation-report"]:
        # Needs no settings: it reads labelled frames and the packaged or given models only.
        # Imported here, not at the top: the node reads SPEC from this module, and serving
        # needs neither report.
        from sonobridge.inference.entrypoints import report_command

        return report_command.run(argv[1:])
    if argv[:1] == ["shadow-report"]:
        # The composition root builds the database and registry adapters the report reads.
        from sonobridge.inference.bootstrap import compare_stored_versions
        from sonobridge.inference.entrypoints import shadow_command

        return shadow_command.run(argv[1:], compare_stored_versions)
    return SPEC.main(argv)


if __name__ == "__main__":
    sys.exit(main())
