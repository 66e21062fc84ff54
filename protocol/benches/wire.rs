//! Criterion benchmarks of the wire format: signing and verifying a full batch, per entry,
//! against a raw Ed25519 verification measured in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossmatch_protocol::limits::MAX_ENTRIES_PER_BATCH;
use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, Evaluation, FederationId, Handling, Kind, Op, PublicKey,
    SigningKey, Token, sign_batch, verify_batch,
};
use std::hint::black_box;

const FEDERATION: FederationId = FederationId([7; 32]);

fn full_batch_entries() -> Vec<Entry> {
    (0..MAX_ENTRIES_PER_BATCH)
        .map(|i| Entry {
            salt: [i as u8; 16],
            op: Op::Add(Add {
                token: Token(*blake3::hash(&i.to_be_bytes()).as_bytes()),
                kind: Kind::Account,
                category: "terrorism/propaganda".into(),
                handling: Handling::H1,
                evaluation: Evaluation::new('B', 2).unwrap(),
                activity_per_day: Some(120),
                expires_at_ms: 1_900_000_000_000,
                algorithmic: false,
            }),
        })
        .collect()
}

fn bench_wire(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let roster: Vec<PublicKey> = vec![key.public_key()];
    let position = BatchPosition {
        generation: 1,
        seq: 1,
        prev: BatchHash::ZERO,
        epoch: 1,
        created_at_ms: 1_800_000_000_000,
    };
    let entries = full_batch_entries();
    let batch = sign_batch(&key, &FEDERATION, position, &entries).unwrap();
    let wire = batch.to_wire();

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("sign_full_batch", |b| {
        b.iter(|| sign_batch(&key, &FEDERATION, position, black_box(&entries)).unwrap())
    });
    group.bench_function("verify_full_batch", |b| {
        b.iter(|| verify_batch(black_box(&wire), &FEDERATION, &roster[..]).unwrap())
    });
    group.bench_function("verify_and_decode_entries", |b| {
        b.iter(|| {
            let verified = verify_batch(black_box(&wire), &FEDERATION, &roster[..]).unwrap();
            verified.entries().filter(Result::is_ok).count()
        })
    });
    group.finish();

    let message = [0x5a_u8; 48];
    let signature = key.sign(&message);
    let public_key = key.public_key();
    c.bench_function("raw_ed25519_verify_strict", |b| {
        b.iter(|| public_key.verify_strict(black_box(&message), &signature))
    });
}

criterion_group!(benches, bench_wire);
criterion_main!(benches);
