#!/bin/bash
# Runs the benchmarks and prints their Markdown tables: the RT guest on this machine's
# /dev/kvm, then the Linux partition's boot, its virtio-blk throughput (fio in the guest) and the
# virtio-net throughput between two partitions (iperf3), inside the KVM test host (where QEMU,
# Debian's qemu-system-x86, runs beside bulkhead on the same real KVM). Paste the output, with
# the commit, into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-5}
cargo build --release --quiet
(cd guests && cargo build --release --quiet)
scripts/build-images.sh >/dev/null
echo "commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d)"
echo
/usr/bin/python3 bench/boot.py rt --runs "$RUNS"
echo
scripts/testhost.sh run --timeout 3000 -- /usr/bin/python3 bench/boot.py linux --runs "$RUNS"
echo
# Each run boots both contenders in one test host of its own (block.py starts them); a run whose test host dies is run again.
/usr/bin/python3 bench/block.py --runs "$RUNS"
echo
# Two partitions over a direct link against two QEMU guests on a Linux bridge (vhost off/on),
# all inside one test host per run.
/usr/bin/python3 bench/net.py --runs "$RUNS"
echo
# The hostile-neighbour suite on this machine's /dev/kvm, then inside the test host.
/usr/bin/python3 bench/hostile.py --runs "$RUNS"
echo
/usr/bin/python3 bench/hostile_linux.py --runs "$RUNS"
echo
# The RT partition's way back after a restart, and the bridge's policy stages.
/usr/bin/python3 bench/restart.py --runs "$RUNS"
echo
/usr/bin/python3 bench/windows.py --runs "$RUNS"
echo
cargo run --release --quiet -p bulkhead-bridge --example policy_cost
cargo run --release --quiet -p bulkhead-bridge --example tunnel_cost
