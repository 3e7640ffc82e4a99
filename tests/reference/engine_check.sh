#!/usr/bin/env bash
# Bit-exactness of the C++ engine against the independent Python reference
# (tests/reference/reference.py), per layer and on the logits:
#   the paper's MCUNet-5fps (CIFAR-10) on 200 test images with the reference
#   kernels and with the best kernels of this machine, and the three
#   tiny-training ImageNet models on a few images.
# Usage: engine_check.sh TINYZO_BINARY [N_IMAGES]
set -euo pipefail
bin="$1"
n="${2:-200}"
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
data="${TINYZO_DATA:-$here/../../../shared/data}"
"$bin" --data-dir "$data" import mcunet-cifar10 -o "$tmp/cifar.tzm" > /dev/null
for k in ref best; do
  "$py" "$here/check_engine.py" --tinyzo "$bin" --data-dir "$data" --model "$tmp/cifar.tzm" --n "$n" --kernels "$k"
done
for m in mcunet-5fps mbv2-w0.35 proxyless-w0.3; do
  "$bin" --data-dir "$data" import "$m" -o "$tmp/$m.tzm" > /dev/null
  "$py" "$here/check_engine.py" --tinyzo "$bin" --data-dir "$data" --model "$tmp/$m.tzm" \
    --source "$data/models/original/$m.pkl" --n 8 --kernels best
done
