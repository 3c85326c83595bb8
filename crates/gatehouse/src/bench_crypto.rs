//! `gatehouse bench-crypto`: the raw cost of the crypto Gatehouse does per
//! request, measured with the same code paths (aws-lc-rs signing with a
//! pre-parsed key, argon2id at the configured cost) on every core. The
//! load benchmark divides its token and login rates by these numbers.

use gatehouse_jose::keys::{Alg, SigningKey};
use std::time::{Duration, Instant};

fn rate(threads: usize, seconds: u64, f: impl Fn() + Sync) -> f64 {
    let total = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut n = 0u64;
                while start.elapsed() < Duration::from_secs(seconds) {
                    f();
                    n += 1;
                }
                total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    total.load(std::sync::atomic::Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Prints `name rate_per_second` lines.
pub fn run(cfg: &crate::config::Config, seconds: u64) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let msg = [7u8; 600]; // about the size of a JWS signing input
    for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
        let (key, _) = SigningKey::generate(alg).map_err(|e| anyhow::anyhow!("{e}"))?;
        let r = rate(threads, seconds, || {
            let _ = key.sign_raw(&msg);
        });
        println!("sign_{} {:.0}", alg.as_str(), r);
    }
    let cost = cfg.password_cost();
    let r = rate(threads, seconds, || {
        let _ = gatehouse_core::password::hash("correct horse battery staple", cost);
    });
    println!(
        "argon2id_m{}_t{}_p{} {:.1}",
        cost.memory_kib, cost.iterations, cost.parallelism, r
    );
    println!("threads {threads}");
    Ok(())
}
