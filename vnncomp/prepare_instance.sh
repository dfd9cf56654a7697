#!/usr/bin/env bash
# VNN-COMP tool interface: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Checks that the network and the property load (exit 0); a model or property we cannot handle exits 1,
# which tells the harness to skip the instance.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
check_version "${1:-}"
[ $# -eq 4 ] || { echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2; exit 1; }
ONNX="$(plain "$3")" || exit 1
VNNLIB="$(plain "$4")" || exit 1
# parse the property and load (and cross-check) the network; --timeout 0 answers unknown at once
"$VERIFICATION" verify "$ONNX" "$VNNLIB" --timeout 0 --quiet > /dev/null
code=$?
[ "$code" -eq 0 ] || [ "$code" -eq 1 ] || [ "$code" -eq 3 ] || exit 1
exit 0
