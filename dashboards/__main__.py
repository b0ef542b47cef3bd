"""``python -m dashboards``: make the dashboards' database roles, then serve the Streamlit app.

Run by ``asbuilt up`` (:func:`asbuilt.services.stack.dashboards`) with ``ASBUILT_DB_DSN`` set to
the application database's owner login. Unless ``ASBUILT_DASHBOARD_DSN`` is given (logins an
administrator made, see :data:`dashboards.service.GRANTS_SQL`), the read-only and acknowledging
roles are created or refreshed with fresh passwords (:func:`dashboards.service.ensure_roles`);
then this process becomes ``streamlit run dashboards/app.py`` with only the role DSNs in its
environment -- the owner's DSN never reaches the app.
"""

from __future__ import annotations

import os
import sys

from asbuilt.errors import AsbuiltError
from asbuilt.settings import Settings
from dashboards.service import ensure_roles, streamlit_argv


def main() -> None:
    settings = Settings()
    env = dict(os.environ)
    admin = env.pop("ASBUILT_DB_DSN", None)
    if not env.get("ASBUILT_DASHBOARD_DSN"):
        if not admin:
            sys.stderr.write(
                "python -m dashboards: set ASBUILT_DB_DSN (a login that may create roles) or "
                "ASBUILT_DASHBOARD_DSN (a read-only login)\n"
            )
            raise SystemExit(2)
        try:
            roles = ensure_roles(admin)
        except AsbuiltError as exc:
            sys.stderr.write(f"python -m dashboards: {exc}\n")
            raise SystemExit(1) from None
        env["ASBUILT_DASHBOARD_DSN"] = roles.reader
        env["ASBUILT_DASHBOARD_ACK_DSN"] = roles.acker
    argv = streamlit_argv(settings.bind_host, settings.dashboard_port)
    os.execve(argv[0], argv, env)  # noqa: S606 - our own interpreter, a fixed argv


if __name__ == "__main__":
    main()
