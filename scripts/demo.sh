#!/bin/bash
# The demo command (README): from a fresh Debian 12 machine with Rust and KVM, builds what is
# missing (guest images, the RT guest, bulkhead) with progress shown, then runs
# examples/demo.toml: the Rust real-time partition beside a stock Debian Linux partition.
# Where this machine's KVM cannot run Linux guests (a software KVM without VT-x/AMD-V, as on
# the build machines), the demo runs inside the KVM test host (scripts/testhost.sh).
# Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '==> %s\n' "$*"; }

step "[1/4] guest images"
scripts/build-images.sh
step "[2/4] Rust real-time guest"
(cd guests && cargo build --release)
step "[3/4] bulkhead"
cargo build --release
step "[4/4] running examples/demo.toml (Ctrl-C stops it)"
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
	exec target/release/bulkhead run examples/demo.toml
else
	echo "    this machine's KVM cannot run Linux guests: running the demo inside the KVM test host"
	exec scripts/testhost.sh run --timeout 0 -- target/release/bulkhead run examples/demo.toml
fi
