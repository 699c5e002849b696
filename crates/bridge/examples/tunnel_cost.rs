//! What the tunnel's record layer costs on one core: 1500-byte frames sealed, opened, and
//! both in turn (as one host's sender and the other's receiver would), in frames/s and
//! Gbit/s of frame data. The median of five runs of about a second each.
//!
//! `cargo run --release -p bulkhead-bridge --example tunnel_cost [FRAME_BYTES]`

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bulkhead_bridge::tunnel::{Direction, Opener, Sealer, MAX_FRAME, OVERHEAD};

const RUNS: usize = 5;
const RUN_TIME: Duration = Duration::from_secs(1);
/// Frames between clock reads.
const CHUNK: u64 = 1024;
/// Records sealed ahead for the open-only runs.
const OPEN_BATCH: usize = 4096;

fn main() -> Result<(), Box<dyn Error>> {
    let frame_len: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1500,
    };
    if frame_len > MAX_FRAME {
        return Err(format!("frames are at most {MAX_FRAME} bytes").into());
    }
    let from: SocketAddr = "192.0.2.1:47000".parse()?;
    let to: SocketAddr = "192.0.2.2:47000".parse()?;
    let direction = Direction::new(from, to);
    let key = [0x42u8; 32];
    let frame: Vec<u8> = (0..frame_len).map(|i| i as u8).collect();
    let mut record = vec![0u8; frame_len + OVERHEAD];

    println!(
        "tunnel record layer, {frame_len}-byte frames, one core, median of {RUNS} runs of {:?}",
        RUN_TIME
    );

    // Seal only.
    let mut sealer = Sealer::new(&key, direction)?;
    let seal = runs(|| {
        measure(|| {
            sealer.seal(&frame, &mut record)?;
            Ok(())
        })
    })?;
    report("seal", seal, frame_len);

    // Open only: records sealed ahead, outside the clock; each round opens them all with a
    // new opener (the same records again would be replays), copying each into place first.
    let mut sealer = Sealer::new(&key, direction)?;
    let batch: Vec<Vec<u8>> = (0..OPEN_BATCH)
        .map(|_| {
            let mut r = vec![0u8; frame_len + OVERHEAD];
            sealer.seal(&frame, &mut r).map(|_| r)
        })
        .collect::<Result<_, _>>()?;
    let open = runs(|| {
        let start = Instant::now();
        let mut frames = 0u64;
        while start.elapsed() < RUN_TIME {
            let mut opener = Opener::new(&key, direction);
            for r in &batch {
                record.copy_from_slice(r);
                opener.open(&mut record)?;
            }
            frames += batch.len() as u64;
        }
        Ok(frames as f64 / start.elapsed().as_secs_f64())
    })?;
    report("open", open, frame_len);

    // Seal then open, the whole path of a frame through the record layer.
    let mut sealer = Sealer::new(&key, direction)?;
    let mut opener = Opener::new(&key, direction);
    let both = runs(|| {
        measure(|| {
            let len = sealer.seal(&frame, &mut record)?;
            let opened = opener.open(&mut record[..len])?;
            if opened.len() != frame_len {
                return Err("opened frame of another length".into());
            }
            Ok(())
        })
    })?;
    report("seal+open", both, frame_len);
    Ok(())
}

/// Frames per second of `step` over about [`RUN_TIME`].
fn measure(mut step: impl FnMut() -> Result<(), Box<dyn Error>>) -> Result<f64, Box<dyn Error>> {
    let start = Instant::now();
    let mut frames = 0u64;
    while start.elapsed() < RUN_TIME {
        for _ in 0..CHUNK {
            step()?;
        }
        frames += CHUNK;
    }
    Ok(frames as f64 / start.elapsed().as_secs_f64())
}

/// `RUNS` results of `run`, sorted.
fn runs(mut run: impl FnMut() -> Result<f64, Box<dyn Error>>) -> Result<Vec<f64>, Box<dyn Error>> {
    let mut rates = (0..RUNS).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    rates.sort_by(f64::total_cmp);
    Ok(rates)
}

fn report(what: &str, sorted_rates: Vec<f64>, frame_len: usize) {
    let gbit = |rate: f64| rate * frame_len as f64 * 8.0 / 1e9;
    let median = sorted_rates[RUNS / 2];
    println!(
        "{what:>10}: {:>10.0} frames/s  {:>6.2} Gbit/s  {:>6.0} ns/frame  (runs {:.2}..{:.2} Gbit/s)",
        median,
        gbit(median),
        1e9 / median,
        gbit(sorted_rates[0]),
        gbit(sorted_rates[RUNS - 1]),
    );
}
