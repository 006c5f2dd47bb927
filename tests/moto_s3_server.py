"""moto's S3-compatible server for tests, with one fix to its HTTP handler: the answer to
``Expect: 100-continue`` is sent once.

``moto_server`` runs on Werkzeug's development server, which answers ``Expect: 100-continue`` twice: Python's
``BaseHTTPRequestHandler.parse_request`` sends ``100 Continue`` and Werkzeug's ``run_wsgi`` sends another.
The AWS C++ SDK in pyarrow (curl) can then read the final response of a ``CompleteMultipartUpload`` as
empty. It retries, fails with ``INTERNAL_FAILURE``, and Ray's storage validation fails with it. Whether this
happens depends on timing, so a test that uses ``moto_server`` as it ships fails on some runs and passes on
others. Real S3, MinIO and Ceph answer once. Usage: ``python tests/moto_s3_server.py HOST PORT``."""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class SingleContinueHandler(MotoRequestHandler):
    def handle_expect_100(self) -> bool:
        # Werkzeug's run_wsgi writes "100 Continue" itself; the base class would write a second one.
        return True


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=True, request_handler=SingleContinueHandler)


if __name__ == "__main__":
    main()
