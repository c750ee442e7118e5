//! The sealer's hot path on one core: leaf hash → tree → tiles → rows for
//! epochs of 1k, 100k and 1M admitted events (`seal_epoch`), and apart from it
//! the gate that admits them (`gate`: canonical decode, rules, signatures in
//! batches) on one thread and on two; then the parts: the tree and its tiles at
//! each size, Avro decode, leaf hashing, and the ClickHouse client's RowBinary
//! encoding of the rows. `BENCH_MALLOC_DEFAULTS=1` measures with glibc's
//! defaults instead of the sealer's allocator settings.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealer::epoch;
use sealer::proof::{leaf_hash, EpochTree};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

fn seal(c: &mut Criterion) {
    // As `sealer run` does: epochs reuse the memory the previous one freed.
    if std::env::var_os("BENCH_MALLOC_DEFAULTS").is_none() {
        sealer::memory::keep_freed_memory();
    }
    let keys = benches::keys();
    let mut g = c.benchmark_group("seal_epoch");
    g.sample_size(10);
    for n in SIZES {
        let records = benches::records(n);
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        println!("{n} records, {} bytes each on average", bytes / n);
        let admitted = epoch::admit(records.clone(), &benches::gate(&keys, 2));
        assert_eq!(
            admitted.admitted.len(),
            n,
            "every benchmark record passes the gate"
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || admitted.clone(),
                |a| epoch::seal_admitted(1, 0, 1000, a, 0),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    // The gate: decoding, canonical check, rules, device key, signatures in
    // batches of 64; on one thread, then spread over two.
    let mut g = c.benchmark_group("gate");
    g.sample_size(10);
    let n = 20_000;
    let records = benches::records(n);
    g.throughput(Throughput::Elements(n as u64));
    for threads in [1, 2] {
        g.bench_function(format!("{n}/threads={threads}"), |b| {
            b.iter_batched(
                || records.clone(),
                |r| epoch::admit(r, &benches::gate(&keys, threads)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    // The same rows without leaf hashes, tree or proofs: the difference is what
    // sealing costs on the CPU.
    let mut g = c.benchmark_group("rows_unsealed");
    g.sample_size(10);
    let n = 100_000;
    let records = benches::records(n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("{n}"), |b| {
        b.iter_batched(
            || records.clone(),
            |r| epoch::unsealed(0, 1000, r, 0),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn leaves(n: usize) -> Vec<sealer::proof::Hash> {
    benches::records(n)
        .iter()
        .map(|r| leaf_hash(schemas::avro::datum_of(&r.value).unwrap()))
        .collect()
}

fn tree(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_build");
    g.sample_size(10);
    for n in SIZES {
        let leaves = leaves(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| EpochTree::build(&leaves).root())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("tiles_of_tree");
    g.sample_size(10);
    for n in SIZES {
        let tree = EpochTree::build(&leaves(n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| sealer::tile::tiles_of(&tree).len())
        });
    }
    g.finish();
}

fn parts(c: &mut Criterion) {
    let n = 100_000;
    let records = benches::records(n);
    let mut g = c.benchmark_group("parts_100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("avro_decode", |b| {
        b.iter(|| {
            for r in &records {
                std::hint::black_box(schemas::avro::decode_single_object(&r.value).unwrap());
            }
        })
    });
    let datums: Vec<&[u8]> = records
        .iter()
        .map(|r| schemas::avro::datum_of(&r.value).unwrap())
        .collect();
    g.bench_function("leaf_hash", |b| {
        b.iter(|| datums.iter().map(|d| leaf_hash(d)).collect::<Vec<_>>())
    });
    // The GS1 CBV 2.0 event hash of each event: what storing it would add.
    let events: Vec<schemas::ScanEvent> = records
        .iter()
        .map(|r| schemas::avro::decode_single_object(&r.value).unwrap())
        .collect();
    g.bench_function("event_hash", |b| {
        b.iter(|| {
            events
                .iter()
                .map(schemas::event_hash::event_hash)
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

/// The rows of a 100k epoch through `store::insert_events`, the sealer's own
/// insert, into the client's in-process sink: RowBinary encoding plus one
/// loopback HTTP request, no ClickHouse work.
fn rows(c: &mut Criterion) {
    use clickhouse::test::{handlers, Mock};
    let n = 100_000;
    let keys = benches::keys();
    let sealed = epoch::seal(1, 0, 1000, benches::records(n), 0, &benches::gate(&keys, 2));
    let bytes: usize = sealed
        .rows
        .iter()
        .map(|r| r.payload.len() + 32)
        .sum::<usize>()
        + sealed
            .tiles
            .iter()
            .flat_map(|t| &t.rows)
            .map(|r| 32 * r.len())
            .sum::<usize>();
    println!(
        "{n} rows, {} bytes of payload, leaf hash and stored tree each on average",
        bytes / n
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mock = rt.block_on(async { Mock::new() });
    let client = clickhouse::Client::default()
        .with_mock(&mock)
        .with_validation(false);
    let mut g = c.benchmark_group("clickhouse_rows");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("rowbinary_100k", |b| {
        b.iter(|| {
            // A 200 without an exception header: the insert succeeds.
            mock.add(handlers::failure(http::StatusCode::OK));
            rt.block_on(sealer::store::epochs::insert_events(&client, &sealed.rows))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(hot_path, seal, tree, parts, rows);
criterion_main!(hot_path);
