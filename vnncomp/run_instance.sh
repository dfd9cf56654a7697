#!/usr/bin/env bash
# VNN-COMP tool interface: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Writes RESULTS_FILE: sat + ((X_0 v) ... (Y_0 v) ...), unsat, timeout, unknown, or error.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
check_version "${1:-}"
[ $# -eq 6 ] || { echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2; exit 1; }
RESULTS="$5"
TIMEOUT="$6"
ONNX="$(plain "$3")" || { echo error > "$RESULTS"; exit 0; }
VNNLIB="$(plain "$4")" || { echo error > "$RESULTS"; exit 0; }
rm -f "$RESULTS"
"$VERIFICATION" verify "$ONNX" "$VNNLIB" --timeout "$TIMEOUT" --result-file "$RESULTS" --quiet
code=$?
case "$code" in
    0|1|3) ;;                              # unsat / sat / timeout-unknown: the result file is written
    *) [ -s "$RESULTS" ] || echo error > "$RESULTS" ;;
esac
exit 0
