# Shared by prepare_instance.sh and run_instance.sh: the repository's venv, single-threaded BLAS, and
# gunzipped copies of .gz inputs.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERIFICATION="${VERIFICATION:-$REPO/.venv/bin/verification}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

check_version() {
    if [ "$1" != "v1" ]; then
        echo "expected the interface version v1, got '$1'" >&2
        exit 1
    fi
}

# plain FILE: FILE itself, or for FILE.gz a gunzipped copy in a scratch directory removed on exit
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/vnncomp.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
plain() {
    case "$1" in
        *.gz)
            local out="$SCRATCH/$(basename "${1%.gz}")"
            gzip -dc "$1" > "$out" || return 1
            echo "$out" ;;
        *) echo "$1" ;;
    esac
}
