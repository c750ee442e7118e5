//! Seals one epoch of N simulated events (default 100,000) and exits: a fixed
//! amount of work for `valgrind --tool=callgrind`, whose instruction counts stay
//! put on a noisy machine where criterion's wall times do not.
//!
//!     cargo build --release -p benches --example seal_once
//!     valgrind --tool=callgrind --toggle-collect='sealer::epoch::build*' \
//!         target/release/examples/seal_once 100000

fn main() {
    let n = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of events"))
        .unwrap_or(100_000);
    let records = benches::records(n);
    let keys = benches::keys();
    let sealed = sealer::epoch::seal(1, 0, 1000, records, 0, &benches::gate(&keys, 1));
    println!("{} rows, root {}", sealed.rows.len(), hex(&sealed.root));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
