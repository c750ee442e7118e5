//! The sealer's hot path on one core: decode → leaf hash → tree → proofs → rows,
//! for epochs of 1k, 100k and 1M events, plus its parts.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealer::epoch;
use sealer::proof::{leaf_hash, EpochTree};

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_epoch");
    g.sample_size(10);
    for n in [1_000usize, 100_000, 1_000_000] {
        let records = benches::records(n);
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        println!("{n} records, {} bytes each on average", bytes / n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || records.clone(),
                |r| epoch::seal(1, 0, 1000, r, 0),
                BatchSize::LargeInput,
            )
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
    let leaves: Vec<_> = datums.iter().map(|d| leaf_hash(d)).collect();
    g.bench_function("tree_build", |b| {
        b.iter(|| EpochTree::build(&leaves).root())
    });
    let tree = EpochTree::build(&leaves);
    g.bench_function("proofs", |b| {
        b.iter(|| (0..n).map(|i| tree.proof(i).len()).sum::<usize>())
    });
    g.finish();
}

criterion_group!(hot_path, seal, parts);
criterion_main!(hot_path);
