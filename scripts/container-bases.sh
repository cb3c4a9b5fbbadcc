#!/usr/bin/env bash
# Stand-in base images for the container tests (tests/deploy/test_images.py, test_compose.py),
# built from Debian's packages with mmdebstrap because no image registry is reachable here:
#   python   - Python 3.11 with venv and pip, `python`/`pip` in /usr/local/bin (as python:3.11-slim)
#   postgres - PostgreSQL 15 with an entrypoint honouring POSTGRES_USER/PASSWORD/DB (as postgres:*)
# The root filesystems are cached as tarballs under $SEPSIS_BASES_CACHE, keyed by this script's
# content and the machine's CA certificates, so they are built once per machine; every call
# then imports them into the podman storage in effect (CONTAINERS_STORAGE_CONF is honoured)
# and prints one NAME=IMAGE line per base. Needs root, mmdebstrap and podman
# (scripts/ensure-test-tools.sh installs them).
set -euo pipefail

CACHE_ROOT=${SEPSIS_BASES_CACHE:-/var/cache/sepsis-api/container-bases}
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
PYTHON_IMAGE=localhost/sepsis-stand-in/python:3.11
POSTGRES_IMAGE=localhost/sepsis-stand-in/postgres:15
PG_BIN=/usr/lib/postgresql/15/bin
# The machine's extra CA certificates: pip inside a build step verifies PyPI through them.
EXTRA_CAS=/usr/local/share/ca-certificates
PATH_DEFAULT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "container-bases: $*" >&2; }
die() { echo "container-bases: $*" >&2; exit 1; }

cache_key() {
    { cat "${BASH_SOURCE[0]}"; find "$EXTRA_CAS" -type f -name '*.crt' -print0 2>/dev/null \
        | sort -z | xargs -0r cat; } | sha256sum | cut -c1-16
}

# Like the slim images: no documentation, manual pages or translations; and no fsync per file
# while unpacking (a throwaway root filesystem, several times faster on a busy disk).
SLIM=(
    --dpkgopt=force-unsafe-io
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
)

debootstrap_tar() {  # OUT PACKAGES HOOK...
    local out=$1 packages=$2
    shift 2
    local hooks=() hook
    for hook in "$@"; do hooks+=(--customize-hook="$hook"); done
    # merged-usr: /usr merged by the hook, so apt need not pull in usrmerge (and with it perl).
    mmdebstrap --quiet --mode=root --format=tar --variant=minbase --include="$packages" \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${SLIM[@]}" \
        --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"' \
        --customize-hook="find $EXTRA_CAS -maxdepth 1 -name '*.crt' -exec cp {} \"\$1/usr/local/share/ca-certificates/\" ';'" \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        "${hooks[@]}" "$SUITE" "$out" "$MIRROR" </dev/null
}

build_python() {
    debootstrap_tar "$1" python3,python3-venv,python3-pip,ca-certificates \
        'ln -sf /usr/bin/python3 "$1/usr/local/bin/python"' \
        'ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"' \
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
}

# The official image's contract, as far as compose.yaml uses it: POSTGRES_* on first start,
# data in $PGDATA (a volume), the server as PID 1 listening on every interface.
POSTGRES_ENTRYPOINT='#!/bin/sh
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf "%s\n" "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \
        --locale=C.UTF-8 -A scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '"'"'*'"'"'" >>"$PGDATA/postgresql.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\";" | as_postgres postgres --single -j -D "$PGDATA" postgres >/dev/null
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
'

build_postgres() {
    local entry
    entry=$(mktemp)
    printf '%s' "$POSTGRES_ENTRYPOINT" >"$entry"
    debootstrap_tar "$1" postgresql-15,ca-certificates \
        'rm -rf "$1"/etc/postgresql/15/main "$1"/var/lib/postgresql/15/main' \
        "install -m 755 $entry \"\$1/usr/local/bin/docker-entrypoint.sh\""
    rm -f "$entry"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap --mode=root, podman storage)"
    command -v mmdebstrap >/dev/null && command -v podman >/dev/null \
        || die "mmdebstrap or podman missing: run scripts/ensure-test-tools.sh"
    local dir
    dir="$CACHE_ROOT/$(cache_key)"
    mkdir -p "$dir"
    # One builder at a time per machine; later callers find the tarballs done.
    exec 9>"$dir/.lock"
    flock --timeout 1800 9 || die "timed out waiting for another build in $dir"
    local base pid pids=() failed=0
    for base in python postgres; do  # both at once: mostly waiting on downloads and the disk
        if [[ ! -s $dir/$base.tar ]]; then
            say "building the $base base with mmdebstrap (once per machine) in $dir"
            rm -f "$dir/$base.tar.part"
            { "build_$base" "$dir/$base.tar.part" >"$dir/$base.log" 2>&1 \
                && mv "$dir/$base.tar.part" "$dir/$base.tar"; } &
            pids+=($!)
        fi
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    for base in python postgres; do
        [[ -s $dir/$base.tar ]] || { cat "$dir/$base.log" >&2; failed=1; }
    done
    [[ $failed -eq 0 ]] || die "mmdebstrap failed (log above)"
    exec 9>&-
    # Other keys are left by older versions of this script; a day untouched means unused.
    find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d ! -path "$dir" -mtime +1 -exec rm -rf {} +

    podman image exists "$PYTHON_IMAGE" || podman import --quiet \
        --change "ENV PATH=$PATH_DEFAULT" --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' "$dir/python.tar" "$PYTHON_IMAGE" >/dev/null
    podman image exists "$POSTGRES_IMAGE" || podman import --quiet \
        --change "ENV PATH=$PG_BIN:$PATH_DEFAULT" --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'EXPOSE 5432' \
        --change 'STOPSIGNAL SIGINT' --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD []' "$dir/postgres.tar" "$POSTGRES_IMAGE" >/dev/null
    echo "python=$PYTHON_IMAGE"
    echo "postgres=$POSTGRES_IMAGE"
}

main "$@"
