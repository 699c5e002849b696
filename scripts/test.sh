#!/bin/bash
# The test command (README, and what .ci/run calls): from a fresh Debian 12 machine with Rust
# and KVM, installs what the tests need, builds the guest images, the RT guest and bulkhead,
# checks format and lints, then runs every test — unit tests, the RT guest on this machine's
# /dev/kvm, and the Linux guests inside the KVM test host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "guest images (scripts/build-images.sh; cached in ${BULKHEAD_CACHE:-$HOME/.cache/bulkhead})"
scripts/build-images.sh

step "Rust real-time guest (guests/)"
(cd guests && cargo build --release)

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
(cd guests && cargo fmt --check && cargo clippy --workspace --quiet -- -D warnings)

step "guest unit tests (host-side logic of the no_std crates)"
(cd guests && cargo test --workspace --lib)

step "bulkhead: unit and integration tests (Linux guests boot inside the KVM test host)"
cargo test --workspace
