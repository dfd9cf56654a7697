#!/usr/bin/env bash
# Fetch the public VNN-COMP 2021 mnistfc benchmark (3 ONNX nets, 30 VNN-LIB properties, instance list; ~5 MB)
# into DIR (default benchmarks/data/mnistfc).  Not committed: run this before benchmarks/mnist_fc.py.
set -euo pipefail
dir="${1:-benchmarks/data/mnistfc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --depth 1 --filter=blob:none --sparse https://github.com/stanleybak/vnncomp2021 "$tmp/repo"
git -C "$tmp/repo" sparse-checkout set benchmarks/mnistfc
mkdir -p "$dir"
cp "$tmp"/repo/benchmarks/mnistfc/*.onnx "$tmp"/repo/benchmarks/mnistfc/*.vnnlib "$tmp"/repo/benchmarks/mnistfc/mnistfc_instances.csv "$dir"/
echo "mnistfc: $(ls "$dir"/*.vnnlib | wc -l) properties, $(ls "$dir"/*.onnx | wc -l) networks in $dir"
