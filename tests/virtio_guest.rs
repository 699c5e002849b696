//! VirtIO devices driven by the stock Debian kernel's own drivers, inside the KVM test host:
//! virtio-blk (read-back by checksum, across a restart, flushed data surviving `kill -9` of the
//! monitor, a read-only disk), virtio-rng (`/dev/hwrng`), virtio-console (`hvc0`).
//! Each test is one bash script run inside the test host, which makes its disk images in the
//! test host's own /tmp, runs bulkhead, and prints the host-side checks.

mod common;

use common::*;

/// A bash script for the test host: writes `/tmp/t/system.toml` with one Linux partition with
/// `devices` (TOML) and the guest command `guest_script`, then runs `body` (which starts
/// bulkhead as `$BULKHEAD run /tmp/t/system.toml`).
fn test_host_script(devices: &str, guest_script: &str, action: &str, body: &str) -> String {
    let images = images();
    format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
BULKHEAD={bulkhead}
cat > system.toml <<'TOML'
[system]
name = "t"

[[partition]]
name = "linux"
criticality = "low"
vcpus = 1
cpus = [0]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 bh.modules=virtio bh.action={action} {cmd}"
max_restarts = 1
{devices}
TOML
{body}
"#,
        bulkhead = bulkhead().display(),
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(guest_script),
    )
}

/// The 64-hex-digit checksum after `key=` on the first line containing `key=`.
fn sha_after(out: &str, key: &str) -> Option<String> {
    let line = out.lines().find(|l| l.contains(&format!("{key}=")))?;
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line.get(start..start + 64).map(str::to_string)
}

#[test]
fn block_data_written_reads_back_across_a_partition_restart_and_lands_in_the_image() {
    let guest = r#"if [ "$(dd if=/dev/vda bs=8 count=1 2>/dev/null)" = BHDISK01 ]; then
echo "blk-second-boot sha=$(dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | sha256sum)"
else
dd if=/dev/urandom of=/dev/vda bs=1M seek=1 count=1 conv=fsync 2>/dev/null
printf BHDISK01 | dd of=/dev/vda bs=8 count=1 conv=notrunc,fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
echo "blk-first-boot sha=$(dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | sha256sum)"
reboot -f
fi"#;
    let script = test_host_script(
        "[[partition.device]]\nkind = \"block\"\npath = \"/tmp/t/disk.img\"",
        guest,
        "poweroff",
        "truncate -s 16M disk.img\ntimeout 300 $BULKHEAD run system.toml; echo \"run-status=$?\"\necho \"host sha=$(dd if=disk.img bs=1M skip=1 count=1 2>/dev/null | sha256sum)\"",
    );

    let (_, out) = in_test_host(&script, 900);
    let first = sha_after(&out, "blk-first-boot sha");
    let second = sha_after(&out, "blk-second-boot sha");
    let host = sha_after(&out, "host sha");

    assert!(first.is_some(), "{out}");
    assert_eq!(first, second, "read back after the restart:\n{out}");
    assert_eq!(first, host, "the image holds what the guest wrote:\n{out}");
    assert!(out.contains("linux: restarting"), "{out}");
    assert!(out.contains("run-status=0"), "{out}");
}

#[test]
fn data_the_guest_flushed_survives_kill_9_of_the_partition_process() {
    let guest = r#"dd if=/dev/urandom of=/dev/vda bs=1M count=2 conv=fsync 2>/dev/null
echo "blk-flushed sha=$(dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum)""#;
    let body = r#"truncate -s 16M disk.img
$BULKHEAD run system.toml > out.txt 2>&1 &
for i in $(seq 1 600); do grep -q "blk-flushed sha=" out.txt && break; sleep 0.5; done
pid=$(sed -n 's/.*linux: partition process \([0-9]*\) started.*/\1/p' out.txt | head -n1)
kill -9 "$pid"
wait
cat out.txt
echo "host sha=$(dd if=disk.img bs=1M count=2 2>/dev/null | sha256sum)""#;
    let script = test_host_script(
        "[[partition.device]]\nkind = \"block\"\npath = \"/tmp/t/disk.img\"",
        guest,
        "idle",
        body,
    );

    let (_, out) = in_test_host(&script, 900);
    let flushed = sha_after(&out, "blk-flushed sha");
    let host = sha_after(&out, "host sha");

    assert!(flushed.is_some(), "{out}");
    assert!(out.contains("killed by signal 9"), "{out}");
    assert_eq!(
        flushed, host,
        "flushed data is in the image after the monitor died:\n{out}"
    );
}

#[test]
fn read_only_disk_hwrng_and_hvc0_work_with_the_guests_own_drivers() {
    let guest = r#"echo "ro-flag=$(cat /sys/block/vda/ro)"
dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null; echo "ro-write-status=$?"
echo "rng-current=$(cat /sys/class/misc/hw_random/rng_current)"
echo "rng-bytes=$(dd if=/dev/hwrng bs=64 count=4 2>/dev/null | wc -c)"
echo hello-from-hvc0 > /dev/hvc0"#;
    let devices = "[[partition.device]]\nkind = \"block\"\npath = \"/tmp/t/ro.img\"\nread_only = true\n\n[[partition.device]]\nkind = \"rng\"\n\n[[partition.device]]\nkind = \"console\"";
    let body = "truncate -s 1M ro.img\nsha_before=$(sha256sum < ro.img)\ntimeout 300 $BULKHEAD run system.toml; echo \"run-status=$?\"\n[ \"$(sha256sum < ro.img)\" = \"$sha_before\" ] && echo ro-image-unchanged";
    let script = test_host_script(devices, guest, "poweroff", body);

    let (_, out) = in_test_host(&script, 900);

    assert!(out.contains("linux| ro-flag=1"), "{out}");
    assert!(
        !out.contains("linux| ro-write-status=0"),
        "a write to a read-only disk succeeded:\n{out}"
    );
    assert!(out.contains("ro-image-unchanged"), "{out}");
    assert!(out.contains("linux| rng-current=virtio_rng.0"), "{out}");
    assert!(out.contains("linux| rng-bytes=256"), "{out}");
    assert!(out.contains("linux| hello-from-hvc0"), "{out}");
    assert!(out.contains("run-status=0"), "{out}");
}

#[test]
fn vsock_streams_reach_the_declared_host_socket_and_nothing_else() {
    // socat in the guest connects to the host (CID 2): port 1234 is joined to an echo server
    // on a Unix socket in the test host; port 999 is not declared.
    let guest = r#"echo "vsock-echo=$(echo hello-over-vsock | socat -t 10 - VSOCK-CONNECT:2:1234)"
dd if=/dev/urandom of=/tmp/blob bs=64k count=32 2>/dev/null
echo "vsock-sent sha=$(sha256sum < /tmp/blob)"
echo "vsock-back sha=$(socat -t 20 - VSOCK-CONNECT:2:1234 < /tmp/blob | sha256sum)"
socat -t 5 - VSOCK-CONNECT:2:999 < /dev/null 2>/dev/null; echo "vsock-undeclared-status=$?""#;
    let devices = "[[partition.device]]\nkind = \"vsock\"\ncid = 3\nports = [ { port = 1234, socket = \"/tmp/t/echo.sock\" } ]";
    let body = r#"cat > echo.py <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind("/tmp/t/echo.sock")
s.listen(4)
print("echo-server-ready", flush=True)
while True:
    c, _ = s.accept()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
        n += len(d)
    c.close()
    print(f"echo-server-connection bytes={n}", flush=True)
PY
rm -f echo.sock
python3 echo.py &
echo_pid=$!
for i in $(seq 1 50); do [ -S echo.sock ] && break; sleep 0.1; done
timeout 300 $BULKHEAD run system.toml; echo "run-status=$?"
kill $echo_pid"#;
    let script = test_host_script(devices, guest, "poweroff", body);

    let (_, out) = in_test_host(&script, 900);
    let sent = sha_after(&out, "vsock-sent sha");
    let back = sha_after(&out, "vsock-back sha");

    assert!(out.contains("linux| vsock-echo=hello-over-vsock"), "{out}");
    assert!(sent.is_some(), "{out}");
    assert_eq!(sent, back, "2 MiB echoed back intact:\n{out}");
    assert!(
        out.contains("echo-server-connection bytes=2097152"),
        "{out}"
    );
    assert!(
        out.contains("linux| vsock-undeclared-status=1"),
        "a connection to an undeclared port was not refused:\n{out}"
    );
    assert!(out.contains("run-status=0"), "{out}");
}
