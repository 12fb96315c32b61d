"""Weak-link upload: stock tuspy over a cut 5 Mbit/s, 100 ms RTT link vs one uninterrupted curl.

    uv run python bench/links/bench_weak_link.py [--mb 50] [--cut-every 30] [--notice-after 0]

Issue 20's long form. Needs the local Toxiproxy: `deploy/local/install.sh toxiproxy` and
`deploy/local/up.sh toxiproxy`. Starts its own single-node edition in a temporary directory.
Prints goodput against curl on the same link and the share of bytes sent twice.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The link emulator client and the measurement live with the test that asserts on them.
sys.path.insert(0, str(REPO_ROOT / "tests"))

from chaos.weak_link import MB, LinkShape, Toxiproxy, padded_exam, run_weak_link  # noqa: E402

from sonobridge.node.cli import wait_ready  # noqa: E402
from sonobridge.node.consortium import demo_consortium, seed  # noqa: E402
from sonobridge.node.demo import node_settings_for  # noqa: E402
from sonobridge.node.edition import NodePorts, SingleNode  # noqa: E402


def main() -> int:
    """Start a node, measure once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="exam size in MiB")
    parser.add_argument("--cut-every", type=float, default=30.0, help="seconds between cuts")
    parser.add_argument("--max-cuts", type=int, default=1_000)
    parser.add_argument(
        "--notice-after", type=float, default=0.0, help="seconds until the server sees a cut"
    )
    parser.add_argument("--toxiproxy", default="127.0.0.1:18474", help="Toxiproxy API host:port")
    args = parser.parse_args()
    link = LinkShape(
        cut_every_s=args.cut_every,
        max_cuts=args.max_cuts,
        server_notices_after_s=args.notice_after,
    )
    with tempfile.TemporaryDirectory(prefix="weak-link-") as tmp:
        consortium = demo_consortium()
        node = SingleNode(
            Path(tmp),
            ports=NodePorts.ephemeral(),
            extra_settings=node_settings_for(consortium, Path(tmp)),
        )
        node.start()
        try:
            wait_ready(node)
            admin = consortium.with_role("admin")[0].user
            seed(consortium, node.urls(), consortium.token(node.issuer, admin))
            token = consortium.token(node.issuer, padded_exam(0).operator)
            result = run_weak_link(
                Toxiproxy(args.toxiproxy), node.urls()["ingest"], token, int(args.mb * MB), link
            )
        finally:
            node.stop()
    return 0 if result.exam["state"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
