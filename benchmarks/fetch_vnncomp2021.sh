#!/usr/bin/env bash
# Fetch one public VNN-COMP 2021 benchmark folder (e.g. mnistfc: 3 ONNX nets + 30 VNN-LIB files, ~5 MB;
# verivital: 2 MNIST CNNs + 60 properties; acasxu: 45 ONNX nets + 10 properties + the 186-instance CSV, laid
# out as DIR/onnx, DIR/vnnlib for benchmarks/acasxu.py and batch.py) into DIR (default benchmarks/data/NAME).
# Not committed: run this before benchmarks/vnncomp2021.py.   Usage: benchmarks/fetch_vnncomp2021.sh NAME [DIR]
set -euo pipefail
name="${1:?benchmark name, e.g. mnistfc or verivital}"
dir="${2:-benchmarks/data/$name}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --depth 1 --filter=blob:none --sparse https://github.com/stanleybak/vnncomp2021 "$tmp/repo"
git -C "$tmp/repo" sparse-checkout set "benchmarks/$name"
mkdir -p "$dir"
cp -r "$tmp/repo/benchmarks/$name/." "$dir"/
if [ "$name" = acasxu ]; then  # the layout of the ACAS Xu scripts: networks in onnx/, properties in vnnlib/
  mkdir -p "$dir/onnx" "$dir/vnnlib"
  mv "$dir"/*.onnx "$dir/onnx/" && mv "$dir"/*.vnnlib "$dir/vnnlib/"
fi
echo "$name: $(find "$dir" -name '*.vnnlib' | wc -l) properties, $(find "$dir" -name '*.onnx' | wc -l) networks in $dir"
