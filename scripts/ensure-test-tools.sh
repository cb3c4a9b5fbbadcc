#!/usr/bin/env bash
# Install the system tools the test suite needs, if they are missing.
# Idempotent and silent when everything is present; one line per thing it installs.
# Run as root (CI is root). Add one small ensure_<tool> function per tool and call it from main.
set -euo pipefail

PG_ROOT=/usr/lib/postgresql
PG_FALLBACK_USER=sepsis-test
APT_UPDATED=0

say() { echo "ensure-test-tools: $*"; }
die() { echo "ensure-test-tools: $*" >&2; exit 1; }

# Installing needs root; say exactly what is missing otherwise.
need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 is missing and installing it needs root: sudo $0"
}

apt_install() {
    need_root "$*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Newest PostgreSQL bin directory that has initdb, or nothing.
pg_bindir() {
    local found=("$PG_ROOT"/*/bin/initdb)
    [[ -e ${found[0]} ]] || return 0
    printf '%s\n' "${found[@]%/initdb}" | sort -V | tail -n 1
}

pg_clusters() {
    command -v pg_lsclusters >/dev/null && pg_lsclusters -h | awk '{print $1, $2}'
    return 0
}

ensure_postgres() {
    if [[ -z $(pg_bindir) ]]; then
        local before version name
        before=$(pg_clusters)
        apt_install postgresql
        # Debian creates (and may start) a "main" cluster; tests only use the binaries,
        # so drop any cluster this install created.
        while read -r version name; do
            [[ -z $name ]] && continue
            grep -qxF "$version $name" <<<"$before" || pg_dropcluster --stop "$version" "$name"
        done <<<"$(pg_clusters)"
        [[ -n $(pg_bindir) ]] || die "installed postgresql but found no initdb under $PG_ROOT"
        say "installed PostgreSQL server binaries ($(pg_bindir))"
    fi
    # The server refuses to run as root: tests/pg.py runs it as postgres, else $PG_FALLBACK_USER.
    if ! id -u postgres >/dev/null 2>&1 && ! id -u "$PG_FALLBACK_USER" >/dev/null 2>&1; then
        need_root "an unprivileged user to run PostgreSQL"
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_FALLBACK_USER"
        say "created system user $PG_FALLBACK_USER to run PostgreSQL"
    fi
}

# The HTTP load generator that benchmarks/bench_http.py drives (`make bench`).
ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        apt_install wrk
        command -v wrk >/dev/null || die "installed wrk but it is not on PATH"
        say "installed wrk ($(command -v wrk))"
    fi
}

# The headless browser that tests/ui/test_browser.py drives through Playwright
# (Debian's build; Playwright's own browser download is never used).
ensure_chromium() {
    if [[ ! -x /usr/bin/chromium ]]; then
        apt_install chromium fonts-liberation
        [[ -x /usr/bin/chromium ]] || die "installed chromium but /usr/bin/chromium is missing"
        say "installed Chromium ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
    fi
}

# promtool checks and unit-tests the alerting rules in deploy/prometheus/ (Debian's
# prometheus package ships it; its server is not started by the tests).
ensure_promtool() {
    if ! command -v promtool >/dev/null; then
        apt_install prometheus
        command -v promtool >/dev/null || die "installed prometheus but promtool is not on PATH"
        # The package enables and may start its server: the tests only need promtool.
        if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
            systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
        say "installed promtool ($(command -v promtool))"
    fi
}

# The JVM that PySpark starts for tests/batch/test_spark.py (Spark 4 runs on Java 17 or later).
java_major() {
    java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'
}

ensure_java() {
    if ! command -v java >/dev/null || [[ $(java_major) -lt 17 ]]; then
        apt_install openjdk-17-jre-headless
        command -v java >/dev/null && [[ $(java_major) -ge 17 ]] ||
            die "installed openjdk-17-jre-headless but java on PATH is not Java 17 or later"
        say "installed Java ($(java -version 2>&1 | head -n 1))"
    fi
}

# Container tooling for tests/deploy/test_images.py and test_compose.py: buildah builds the
# Dockerfiles, podman runs the images, mmdebstrap makes the stand-in base images (no registry
# is reachable), runc/netavark/aardvark-dns/iptables/catatonit are podman's runtime, network,
# DNS and init. podman-compose comes from PyPI (the dev extra).
CONTAINER_PACKAGES=(buildah podman mmdebstrap runc netavark aardvark-dns iptables catatonit)

ensure_containers() {
    local missing=() pkg
    for pkg in "${CONTAINER_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
        command -v buildah >/dev/null && command -v podman >/dev/null \
            || die "installed ${missing[*]} but buildah or podman is not on PATH"
        say "installed ${missing[*]} ($(podman --version))"
    fi
}

main() {
    ensure_java
    ensure_postgres
    ensure_wrk
    ensure_chromium
    ensure_promtool
    ensure_containers
}

# Sourcing the script (e.g. to test one function) must not run it.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
