//! Virtual UART links driven by the stock Debian kernel's own 8250 driver, inside the KVM test
//! host: partitions `a` and `b` joined by a `[[uart_link]]` talk over their `/dev/ttyS1` in
//! both directions, `a` floods the line while `b` does not read (and loses its own bytes),
//! the line works again once `b` reads, and partition `c`, in no link, has no COM2 at all.
//! One bash script run inside the test host.

mod common;

use common::*;

/// One `[[partition]]` table of a Linux guest that runs `guest`, then powers off.
fn linux_partition(name: &str, cpu: u32, guest: &str) -> String {
    let images = images();
    format!(
        r#"
[[partition]]
name = "{name}"
criticality = "low"
vcpus = 1
cpus = [{cpu}]
memory_mib = 384
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 bh.action=poweroff {cmd}"
"#,
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(guest),
    )
}

/// Shell (busybox) that writes `send` to fd 3 every second until a line `expect` arrives on
/// fd 3, at most `tries` times; then prints `uart-NAME-got LINE`.
fn call_until(name: &str, send: &str, expect: &str, tries: u32) -> String {
    format!(
        "n=0;until [ $n -ge {tries} ];do printf '{send}\\n'>&3;read -t 1 l<&3&&[ \"$l\" = {expect} ]&&break;n=$((n+1));done;echo \"uart-{name}-got $l\"\n"
    )
}

/// Shell that reads fd 3 until a line ending in `expect` arrives (at most `tries` seconds
/// without one), prints `uart-NAME-got LINE`, then answers `reply` five times.
fn answer(name: &str, expect: &str, reply: &str, tries: u32) -> String {
    format!(
        "n=0;until [ $n -ge {tries} ];do read -t 1 l<&3&&case $l in *{expect})break;;esac;n=$((n+1));done;echo \"uart-{name}-got ${{l#${{l%%{expect}}}}}\"\nfor i in 1 2 3 4 5;do printf '{reply}\\n'>&3;sleep 0.2;done\n"
    )
}

/// Opens ttyS1 as fd 3, raw and without echo.
const OPEN: &str = "exec 3<>/dev/ttyS1;stty -F /dev/ttyS1 raw -echo\n";

/// What the 8250 driver says about the second port.
const PORT: &str = "grep '^1:' /proc/tty/driver/serial";

#[test]
fn two_partitions_talk_over_a_uart_link_and_a_third_has_no_com2() {
    // a: ping until b answers, let b close its port, flood it, then call until b acks.
    let a = format!(
        "{OPEN}echo \"uart-a-port $({PORT})\"\necho \"uart-a-irq $(grep ttyS1 /proc/interrupts)\"\n{}sleep 3\nhead -c 8192 /dev/zero|tr '\\0' z>&3\necho uart-a-flooded\n{}",
        call_until("a", "ping-from-a", "pong-from-b", 240),
        call_until("a", "after-flood", "ack-from-b", 120),
    );
    // b: answer the ping, close the port while a floods (its FIFO and the link fill up),
    // open it again and answer a's next call.
    let b = format!(
        "{OPEN}echo \"uart-b-port $({PORT})\"\n{}exec 3>&-\nsleep 20\n{OPEN}{}",
        answer("b", "ping-from-a", "pong-from-b", 300),
        answer("b", "after-flood", "ack-from-b", 120),
    );
    // c: in no link.
    let c = format!(
        "echo \"uart-c-port $({PORT})\"\nif printf 'anyone?\\n'>/dev/ttyS1;then echo uart-c-write=ok;else echo uart-c-write=failed;fi\n"
    );
    let description = format!(
        "[system]\nname = \"serial\"\n{}{}{}\n[[uart_link]]\na = \"a\"\nb = \"b\"\nbuffer_bytes = 1024\n",
        linux_partition("a", 0, &a),
        linux_partition("b", 1, &b),
        linux_partition("c", 0, &c),
    );
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
cat > system.toml <<'TOML'
{description}
TOML
timeout 1100 {bulkhead} run system.toml > out.txt 2>&1
echo "run-status=$?"
cat out.txt
"#,
        bulkhead = bulkhead().display(),
    );

    let (_, out) = in_test_host(&script, 1200);

    // The stock kernel found a 16550A on COM2 in a and b, on IOAPIC pin 3 (GSI 3; Linux's
    // own IRQ number differs, hardware-reduced ACPI has no legacy PIC), nothing in c.
    assert!(
        out.contains("a| uart-a-port 1: uart:16550A port:000002F8 irq:"),
        "{out}"
    );
    assert!(
        out.contains("b| uart-b-port 1: uart:16550A port:000002F8 irq:"),
        "{out}"
    );
    let irq = out.lines().find(|l| l.contains("a| uart-a-irq "));
    assert!(
        irq.is_some_and(|l| l.contains("IO-APIC") && l.contains(" 3-edge") && l.contains("ttyS1")),
        "{out}"
    );
    assert!(
        out.contains("c| uart-c-port 1: uart:unknown port:000002F8 irq:3"),
        "{out}"
    );
    assert!(out.contains("c| uart-c-write=failed"), "{out}");
    assert!(
        out.contains("[bulkhead] a: COM2 (ttyS1) at 0x2f8, GSI 3, linked to partition \"b\""),
        "{out}"
    );
    assert!(!out.contains("[bulkhead] c: COM2"), "{out}");
    // Data both ways, before and after the flood.
    assert!(out.contains("b| uart-b-got ping-from-a"), "{out}");
    assert!(out.contains("a| uart-a-got pong-from-b"), "{out}");
    assert!(out.contains("b| uart-b-got after-flood"), "{out}");
    assert!(out.contains("a| uart-a-got ack-from-b"), "{out}");
    // The flood cost a its own bytes; b lost none that the link delivered.
    let counters = |name: &str| {
        out.lines()
            .find(|l| {
                l.contains(&format!(
                    "[bulkhead] {name}: counters: uart-link ttyS1 <-> "
                ))
            })
            .unwrap_or_else(|| panic!("no uart-link counters for {name}:\n{out}"))
            .to_owned()
    };
    let field = |line: &str, key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let (a_counters, b_counters) = (counters("a"), counters("b"));
    assert!(field(&a_counters, "tx_dropped") > 0, "{a_counters}");
    assert!(field(&a_counters, "tx_bytes") >= 1024, "{a_counters}");
    assert!(
        field(&a_counters, "tx_bytes") + field(&a_counters, "tx_dropped") >= 8192,
        "{a_counters}"
    );
    assert_eq!(field(&b_counters, "rx_overrun"), 0, "{b_counters}");
    assert_eq!(field(&b_counters, "tx_dropped"), 0, "{b_counters}");
    assert!(out.contains("run-status=0"), "{out}");
}
