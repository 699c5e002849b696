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
cargo test --workspace --no-fail-fast

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
step "fuzz: every target under crates/*/fuzz for ${FUZZ_SECONDS} s each (cargo-fuzz, libFuzzer + ASan)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for fuzz in crates/*/fuzz; do
	for target in $(cd "$fuzz/fuzz_targets" && ls -- *.rs | sed 's/\.rs$//'); do
		crate=$(basename "$(dirname "$fuzz")")
		mkdir -p "$scratch/$crate-$target"
		log=$scratch/$crate-$target.log
		# New inputs go to the scratch folder; the committed seeds in corpus/ stay as they are.
		if (cd "$fuzz" && RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "$scratch/$crate-$target" \
			"corpus/$target" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1) >"$log" 2>&1; then
			runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
			echo "    $crate/$target: ${runs:-?} inputs in ${FUZZ_SECONDS} s, no crash"
		else
			tail -n 80 "$log"
			echo "fuzz target $crate/$target failed (log above)" >&2
			exit 1
		fi
	done
done
