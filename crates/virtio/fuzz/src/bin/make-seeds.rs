//! Writes the seed corpus (`corpus/<target>/`) from the unit tests' scenarios: each normal
//! request and each malformed-chain class of `src/**/device.rs` and `src/mmio/transport.rs`,
//! encoded in the fuzz targets' input formats. Run from `crates/virtio/fuzz`:
//! `cargo run --bin make-seeds`. Every seed is also run once through its harness here, so a
//! seed that crashes fails generation.

use std::path::Path;

use bulkhead_virtio_fuzz::{reg, ring_layout, run_device, run_transport, Kind};

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

const SIZE_LOG2: u8 = 3;
const SIZE: u16 = 1 << SIZE_LOG2;
const HEADER: u64 = 0x200;
const DATA: u64 = 0x400;
const STATUS: u64 = 0x600;
const TABLE: u64 = 0x1000;

/// A guest memory image being laid out.
#[derive(Default)]
struct Image(Vec<u8>);

impl Image {
    fn put(&mut self, addr: u64, bytes: &[u8]) {
        let end = addr as usize + bytes.len();
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
        self.0[addr as usize..end].copy_from_slice(bytes);
    }

    fn desc(&mut self, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        self.put(table + 16 * u64::from(index), &d);
    }

    /// A chain of buffers at descriptors 0.., made available on queue `q`.
    fn chain(&mut self, q: usize, buffers: &[(u64, u32, u16)]) {
        let (table, _, _) = ring_layout(q, SIZE);
        for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
            let last = i + 1 == buffers.len();
            let flags = if last { flags } else { flags | F_NEXT };
            let next = if last { 0 } else { i as u16 + 1 };
            self.desc(table, i as u16, addr, len, flags, next);
        }
        self.avail(q, &[0]);
    }

    fn avail(&mut self, q: usize, heads: &[u16]) {
        let (_, avail, _) = ring_layout(q, SIZE);
        self.put(avail + 2, &(heads.len() as u16).to_le_bytes());
        for (i, h) in heads.iter().enumerate() {
            self.put(avail + 4 + 2 * i as u64, &h.to_le_bytes());
        }
    }

    fn blk_header(&mut self, request_type: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&request_type.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.put(HEADER, &h);
    }

    fn blk_segment(&mut self, sector: u64, num: u32, flags: u32) {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&sector.to_le_bytes());
        s[8..12].copy_from_slice(&num.to_le_bytes());
        s[12..].copy_from_slice(&flags.to_le_bytes());
        self.put(DATA, &s);
    }

    fn seed(self, feature_bits: u8, kicks: u8) -> Vec<u8> {
        let mut out = vec![feature_bits, SIZE_LOG2, kicks];
        out.extend(self.0);
        out
    }
}

const EVENT_IDX: u8 = 1;
const INDIRECT: u8 = 2;
const DEVICE_FEATURES: u8 = 4;
const READ_ONLY: u8 = 8;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const T_DISCARD: u32 = 11;
const T_WRITE_ZEROES: u32 = 13;

fn block_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let request = |t: u32, sector: u64, buffers: &[(u64, u32, u16)], bits: u8| {
        let mut img = Image::default();
        img.blk_header(t, sector);
        img.put(DATA, &[0xab; 1024]);
        img.chain(0, buffers);
        img.seed(bits, 0)
    };
    let rw = [
        (HEADER, 16, 0),
        (DATA, 512, F_WRITE),
        (DATA + 512, 512, F_WRITE),
        (STATUS, 1, F_WRITE),
    ];
    let out = [(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)];
    let seg = |t: u32, flags: u32, bits: u8| {
        let mut img = Image::default();
        img.blk_header(t, 0);
        img.blk_segment(8, 16, flags);
        img.chain(0, &[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);
        img.seed(bits, 0)
    };
    let indirect = |entries: &[(u64, u32, u16, u16)], len: u32, bits: u8| {
        let mut img = Image::default();
        img.blk_header(T_IN, 0);
        for (i, &(addr, l, flags, next)) in entries.iter().enumerate() {
            img.desc(TABLE, i as u16, addr, l, flags, next);
        }
        img.chain(0, &[(TABLE, len, F_INDIRECT)]);
        img.seed(bits, 0)
    };
    let looped = {
        let mut img = Image::default();
        img.blk_header(T_OUT, 0);
        img.desc(0, 0, HEADER, 16, F_NEXT, 1);
        img.desc(0, 1, DATA, 512, F_NEXT, 0);
        img.avail(0, &[0]);
        img.seed(0, 0)
    };
    let too_long: Vec<(u64, u32, u16, u16)> =
        (0..257u16).map(|i| (DATA, 512, F_NEXT, i + 1)).collect();
    let far_avail = {
        let mut img = Image::default();
        let (_, avail, _) = ring_layout(0, SIZE);
        img.put(avail + 2, &100u16.to_le_bytes());
        img.seed(0, 0)
    };
    let bad_head = {
        let mut img = Image::default();
        img.avail(0, &[40]);
        img.seed(0, 0)
    };
    vec![
        ("read", request(T_IN, 2, &rw, 0)),
        ("read-event-idx", request(T_IN, 2, &rw, EVENT_IDX)),
        ("write", request(T_OUT, 1, &out, 0)),
        (
            "flush",
            request(
                T_FLUSH,
                0,
                &[(HEADER, 16, 0), (STATUS, 1, F_WRITE)],
                DEVICE_FEATURES,
            ),
        ),
        (
            "get-id",
            request(
                T_GET_ID,
                0,
                &[(HEADER, 16, 0), (DATA, 20, F_WRITE), (STATUS, 1, F_WRITE)],
                0,
            ),
        ),
        ("discard", seg(T_DISCARD, 0, DEVICE_FEATURES)),
        ("discard-unmap", seg(T_DISCARD, 1, DEVICE_FEATURES)),
        ("write-zeroes", seg(T_WRITE_ZEROES, 0, DEVICE_FEATURES)),
        (
            "write-zeroes-unmap",
            seg(T_WRITE_ZEROES, 1, DEVICE_FEATURES),
        ),
        ("discard-not-negotiated", seg(T_DISCARD, 0, 0)),
        (
            "unknown-type",
            request(0x1234, 0, &[(HEADER, 16, 0), (STATUS, 1, F_WRITE)], 0),
        ),
        ("beyond-capacity", request(T_IN, 127, &rw, 0)),
        ("sector-overflow", request(T_IN, u64::MAX / 256, &rw, 0)),
        (
            "not-512-multiple",
            request(
                T_OUT,
                0,
                &[(HEADER, 16, 0), (DATA, 100, 0), (STATUS, 1, F_WRITE)],
                0,
            ),
        ),
        ("read-only-write", request(T_OUT, 0, &out, READ_ONLY)),
        (
            "header-split",
            request(
                T_IN,
                0,
                &[
                    (HEADER, 4, 0),
                    (HEADER + 4, 12, 0),
                    (DATA, 512, F_WRITE),
                    (STATUS, 1, F_WRITE),
                ],
                0,
            ),
        ),
        (
            "indirect-read",
            indirect(
                &[
                    (HEADER, 16, F_NEXT, 1),
                    (DATA, 512, F_NEXT | F_WRITE, 2),
                    (STATUS, 1, F_WRITE, 0),
                ],
                48,
                INDIRECT,
            ),
        ),
        ("loop", looped),
        (
            "out-of-range",
            request(
                T_OUT,
                0,
                &[(HEADER, 16, 0), (0x11000, 512, 0), (STATUS, 1, F_WRITE)],
                0,
            ),
        ),
        (
            "length-wrap",
            request(
                T_OUT,
                0,
                &[
                    (HEADER, 16, 0),
                    (u64::MAX - 100, 512, 0),
                    (STATUS, 1, F_WRITE),
                ],
                0,
            ),
        ),
        (
            "indirect-not-negotiated",
            indirect(&[(HEADER, 16, 0, 0)], 48, 0),
        ),
        (
            "indirect-nested",
            indirect(&[(0x3000, 16, F_INDIRECT, 0)], 16, INDIRECT),
        ),
        (
            "indirect-bad-length",
            indirect(&[(HEADER, 16, 0, 0)], 40, INDIRECT),
        ),
        (
            "wrong-direction",
            request(
                T_IN,
                0,
                &[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)],
                0,
            ),
        ),
        ("no-status", request(T_OUT, 0, &[(HEADER, 16, 0)], 0)),
        ("chain-too-long", indirect(&too_long, 257 * 16, INDIRECT)),
        ("head-out-of-range", bad_head),
        ("avail-too-far", far_avail),
    ]
}

fn rng_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let one = |buffers: &[(u64, u32, u16)], bits: u8| {
        let mut img = Image::default();
        img.chain(0, buffers);
        img.seed(bits, 0)
    };
    let five = {
        let mut img = Image::default();
        let (table, _, _) = ring_layout(0, SIZE);
        for i in 0..5u16 {
            img.desc(table, i, DATA + 0x40 * u64::from(i), 16, F_WRITE, 0);
        }
        img.avail(0, &[0, 1, 2, 3, 4]);
        img.seed(EVENT_IDX, 0)
    };
    vec![
        ("fill", one(&[(DATA, 64, F_WRITE)], 0)),
        (
            "capped",
            one(&[(DATA, 0x800, F_WRITE), (DATA + 0x800, 0x800, F_WRITE)], 0),
        ),
        ("five-buffers", five),
        ("readable-buffer", one(&[(DATA, 16, 0)], 0)),
        ("loop", {
            let mut img = Image::default();
            img.desc(0, 0, DATA, 16, F_WRITE | F_NEXT, 0);
            img.avail(0, &[0]);
            img.seed(0, 0)
        }),
    ]
}

fn console_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let tx = {
        let mut img = Image::default();
        img.put(DATA, b"hello, ");
        img.put(DATA + 0x100, b"world\n");
        let (table, _, _) = ring_layout(1, SIZE);
        img.desc(table, 0, DATA, 7, F_NEXT, 1);
        img.desc(table, 1, DATA + 0x100, 6, 0, 0);
        img.avail(1, &[0]);
        img.seed(0, 1)
    };
    let rx = {
        let mut img = Image::default();
        let (table, _, _) = ring_layout(0, SIZE);
        img.desc(table, 0, DATA, 4, F_WRITE, 0);
        img.desc(table, 1, DATA + 0x100, 4, F_WRITE, 0);
        img.avail(0, &[0, 1]);
        img.seed(EVENT_IDX, 2)
    };
    let tx_writable = {
        let mut img = Image::default();
        let (table, _, _) = ring_layout(1, SIZE);
        img.desc(table, 0, DATA, 8, F_WRITE, 0);
        img.avail(1, &[0]);
        img.seed(0, 1)
    };
    let rx_readable = {
        let mut img = Image::default();
        img.chain(0, &[(DATA, 8, 0)]);
        img.seed(0, 0)
    };
    vec![
        ("transmit", tx),
        ("receive", rx),
        ("transmit-writable", tx_writable),
        ("receive-readable", rx_readable),
    ]
}

fn net_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let on = |q: usize, buffers: &[(u64, u32, u16)], kicks: u8| {
        let mut img = Image::default();
        img.put(DATA, &[0u8; 12]);
        img.put(DATA + 12, &[0xab; 60]);
        let (table, _, _) = ring_layout(q, SIZE);
        for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
            let last = i + 1 == buffers.len();
            let flags = if last { flags } else { flags | F_NEXT };
            img.desc(
                table,
                i as u16,
                addr,
                len,
                flags,
                if last { 0 } else { i as u16 + 1 },
            );
        }
        img.avail(q, &[0]);
        img.seed(EVENT_IDX, kicks)
    };
    vec![
        ("receive", on(0, &[(DATA, 2048, F_WRITE)], 0)),
        ("transmit", on(1, &[(DATA, 12, 0), (DATA + 12, 60, 0)], 1)),
        ("transmit-runt", on(1, &[(DATA, 20, 0)], 1)),
        ("transmit-writable", on(1, &[(DATA, 72, F_WRITE)], 1)),
        ("transmit-short-header", on(1, &[(DATA, 11, 0)], 1)),
        ("receive-readable", on(0, &[(DATA, 2048, 0)], 0)),
        ("receive-short", on(0, &[(DATA, 11, F_WRITE)], 0)),
        ("receive-too-small", on(0, &[(DATA, 100, F_WRITE)], 0)),
    ]
}

/// A vsock packet header (virtio 1.2 §5.10.6) from the guest to the host port.
fn vsock_header(op: u16, len: u32, src_cid: u64, dst_cid: u64) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[..8].copy_from_slice(&src_cid.to_le_bytes());
    h[8..16].copy_from_slice(&dst_cid.to_le_bytes());
    h[16..20].copy_from_slice(&5000u32.to_le_bytes());
    h[20..24].copy_from_slice(&bulkhead_virtio_fuzz::VSOCK_PORT.to_le_bytes());
    h[24..28].copy_from_slice(&len.to_le_bytes());
    h[28..30].copy_from_slice(&1u16.to_le_bytes());
    h[30..32].copy_from_slice(&op.to_le_bytes());
    h[36..40].copy_from_slice(&0x4_0000u32.to_le_bytes());
    h
}

fn vsock_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const REQUEST: u16 = 1;
    const RW: u16 = 5;
    const SHUTDOWN: u16 = 4;
    const CREDIT_REQUEST: u16 = 7;
    let cid = bulkhead_virtio_fuzz::VSOCK_CID;
    // Transmit packets (header, payload) at DATA + 0x100 * i, receive buffers of 0x200 bytes
    // from TABLE + 0x1000.
    let packets = |list: &[([u8; 44], &[u8], u16)], rx_buffers: u16| {
        let mut img = Image::default();
        let (tx_table, _, _) = ring_layout(1, SIZE);
        let mut heads = Vec::new();
        for (i, (header, payload, flags)) in list.iter().enumerate() {
            let addr = DATA + 0x100 * i as u64;
            img.put(addr, header);
            img.put(addr + 44, payload);
            let len = 44 + payload.len() as u32;
            img.desc(tx_table, i as u16, addr, len, *flags, 0);
            heads.push(i as u16);
        }
        img.avail(1, &heads);
        let (rx_table, _, _) = ring_layout(0, SIZE);
        let rx: Vec<u16> = (0..rx_buffers).collect();
        for &i in &rx {
            img.desc(
                rx_table,
                i,
                TABLE + 0x1000 + 0x200 * u64::from(i),
                0x200,
                F_WRITE,
                0,
            );
        }
        img.avail(0, &rx);
        img.seed(EVENT_IDX, 3)
    };
    let request = vsock_header(REQUEST, 0, cid, 2);
    let shutdown = {
        let mut h = vsock_header(SHUTDOWN, 0, cid, 2);
        h[32..36].copy_from_slice(&3u32.to_le_bytes());
        h
    };
    vec![
        ("connect", packets(&[(request, &[], 0)], 4)),
        (
            "connect-send-close",
            packets(
                &[
                    (request, &[], 0),
                    (vsock_header(RW, 5, cid, 2), b"hello", 0),
                    (vsock_header(CREDIT_REQUEST, 0, cid, 2), &[], 0),
                    (shutdown, &[], 0),
                ],
                6,
            ),
        ),
        (
            "spoofed-cid",
            packets(&[(vsock_header(REQUEST, 0, 9, 2), &[], 0)], 2),
        ),
        (
            "other-cid",
            packets(&[(vsock_header(REQUEST, 0, cid, 4), &[], 0)], 2),
        ),
        (
            "stray-data",
            packets(&[(vsock_header(RW, 5, cid, 2), b"stray", 0)], 2),
        ),
        ("no-receive-buffers", packets(&[(request, &[], 0)], 0)),
        ("transmit-writable", packets(&[(request, &[], F_WRITE)], 2)),
        (
            "length-beyond-chain",
            packets(&[(vsock_header(RW, 100, cid, 2), b"short", 0)], 2),
        ),
    ]
}

/// One transport operation.
fn op(code: u8, width: u8, offset: u16, value: u32) -> [u8; 8] {
    let o = offset.to_le_bytes();
    let v = value.to_le_bytes();
    [code, width, o[0], o[1], v[0], v[1], v[2], v[3]]
}

fn reg_write(offset: u64, value: u32) -> [u8; 8] {
    op(0, 2, offset as u16, value)
}

fn poke(addr: u64, value: u32) -> [u8; 8] {
    op(4, 2, (addr / 4) as u16, value)
}

fn bring_up_ops(queue_num: u32, features_high: u32) -> Vec<[u8; 8]> {
    let (desc, avail, used) = ring_layout(0, SIZE);
    vec![
        reg_write(reg::STATUS, 1),
        reg_write(reg::STATUS, 3),
        reg_write(reg::DRIVER_FEATURES_SEL, 1),
        reg_write(reg::DRIVER_FEATURES, features_high),
        reg_write(reg::STATUS, 11),
        reg_write(reg::QUEUE_SEL, 0),
        reg_write(reg::QUEUE_NUM, queue_num),
        reg_write(reg::QUEUE_DESC_LOW, desc as u32),
        reg_write(reg::QUEUE_AVAIL_LOW, avail as u32),
        reg_write(reg::QUEUE_USED_LOW, used as u32),
        reg_write(reg::QUEUE_READY, 1),
        reg_write(reg::STATUS, 15),
    ]
}

fn transport_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let seed = |selector: u8, ops: Vec<[u8; 8]>| {
        let mut out = vec![selector];
        for o in ops {
            out.extend(o);
        }
        out
    };
    let (_, avail, _) = ring_layout(0, SIZE);
    let rng_request = {
        let mut ops = bring_up_ops(u32::from(SIZE), 1);
        ops.extend([
            poke(0, DATA as u32),
            poke(8, 64),
            poke(12, u32::from(F_WRITE)),
            poke(avail, 1 << 16),
            poke(avail + 4, 0),
            reg_write(reg::QUEUE_NOTIFY, 0),
            op(1, 2, 0x60, 0),
            reg_write(0x64, 1),
            op(1, 2, 0x70, 0),
            reg_write(reg::STATUS, 0),
        ]);
        seed(0, ops)
    };
    let features_refused = seed(0, bring_up_ops(u32::from(SIZE), 0));
    let bad_queue_num = seed(2, bring_up_ops(12, 1));
    let config_reads = seed(
        2,
        vec![
            op(1, 2, 0, 0),
            op(1, 2, 4, 0),
            op(1, 2, 8, 0),
            op(2, 0, 0x100, 0),
            op(2, 3, 0x100, 0),
            op(2, 1, 0x122, 0),
            op(1, 2, 0xfc, 0),
            op(5, 0, 0, 0),
        ],
    );
    let console_input = {
        let (table, _, _) = ring_layout(0, SIZE);
        let mut ops = bring_up_ops(u32::from(SIZE), 1);
        ops.extend([
            poke(table, DATA as u32),
            poke(table + 8, 4),
            poke(table + 12, u32::from(F_WRITE)),
            poke(avail, 1 << 16),
            op(5, 0, 0, u32::from_le_bytes(*b"abcd")),
            reg_write(reg::QUEUE_NOTIFY, 0),
        ]);
        seed(1, ops)
    };
    vec![
        ("rng-request", rng_request),
        ("features-refused", features_refused),
        ("bad-queue-num", bad_queue_num),
        ("config-reads", config_reads),
        ("console-input", console_input),
    ]
}

fn write(
    target: &str,
    seeds: Vec<(&str, Vec<u8>)>,
    run: impl Fn(&[u8]) -> Vec<(&'static str, u64)>,
) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (name, bytes) in seeds {
        let counters: Vec<String> = run(&bytes)
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        println!("{target}/{name}: {}", counters.join(" "));
        std::fs::write(dir.join(format!("seed-{name}")), &bytes).expect("seed file");
    }
}

fn main() {
    write("block", block_seeds(), |d| run_device(Kind::Block, d));
    write("rng", rng_seeds(), |d| run_device(Kind::Rng, d));
    write("console", console_seeds(), |d| run_device(Kind::Console, d));
    write("net", net_seeds(), |d| run_device(Kind::Net, d));
    write("vsock", vsock_seeds(), |d| run_device(Kind::Vsock, d));
    write("transport", transport_seeds(), run_transport);
    println!("seeds written under corpus/");
}
