//! Criterion benchmarks of canonicalisation plus token per kind, bare handles and profile URLs
//! reported separately, against raw keyed BLAKE3 hashing measured in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossmatch_protocol::{EpochKey, FederationId, FederationSecret, Kind, canonicalize};
use std::hint::black_box;

/// (benchmark name, kind, platform, region, input).
type Case = (&'static str, Kind, Option<&'static str>, Option<&'static str>, &'static str);

const BARE_HANDLES: &[Case] = &[
    ("x", Kind::Account, Some("x"), None, "Jihadi_John"),
    ("telegram", Kind::Account, Some("telegram"), None, "@Durov_Channel"),
    ("facebook", Kind::Account, Some("facebook"), None, "Mark.Zuckerberg"),
    ("instagram", Kind::Account, Some("instagram"), None, "some.user_1"),
    ("youtube", Kind::Account, Some("youtube"), None, "@MrBeast"),
    ("tiktok", Kind::Account, Some("tiktok"), None, "@some_user"),
    ("other_platform", Kind::Account, Some("vk.com"), None, "Durov"),
    ("account_id", Kind::AccountId, Some("x"), None, "783214"),
];

const PROFILE_URLS: &[Case] = &[
    ("x", Kind::Account, Some("x"), None, "https://twitter.com/Jihadi_John"),
    ("telegram", Kind::Account, None, None, "https://t.me/durov_channel"),
    ("facebook", Kind::Account, None, None, "https://www.facebook.com/profile.php?id=100004"),
    ("instagram", Kind::Account, None, None, "instagram.com/some.user_1/"),
    ("youtube", Kind::Account, None, None, "https://www.youtube.com/@MrBeast"),
    ("tiktok", Kind::Account, None, None, "https://www.tiktok.com/@some_user?lang=en"),
    ("other_platform", Kind::Account, None, None, "https://vk.com/durov"),
    ("account_id", Kind::AccountId, None, None, "https://x.com/i/user/783214"),
];

const OTHER_KINDS: &[Case] = &[
    ("email", Kind::Email, None, None, "John.Doe@Example.com"),
    ("phone_international", Kind::Phone, None, None, "+33 1 42 68 53 00"),
    ("phone_national", Kind::Phone, None, Some("FR"), "01 42 68 53 00"),
    ("url", Kind::Url, None, None, "https://Example.com/a/./b/../c?q=1#frag"),
    ("domain", Kind::Domain, None, None, "Example.COM."),
    ("domain_idn", Kind::Domain, None, None, "bücher.de"),
];

fn epoch_key() -> EpochKey {
    EpochKey::derive(&FederationId([7; 32]), &FederationSecret::from_bytes([9; 32]), 1)
}

fn bench_group(c: &mut Criterion, group_name: &str, cases: &[Case]) {
    let key = epoch_key();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for &(name, kind, platform, region, input) in cases {
        // Every benchmarked input must be accepted, or the figure would measure a refusal.
        if let Err(error) = canonicalize(kind, platform, region, input) {
            panic!("{group_name}/{name} is refused: {error}");
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                let canonical = canonicalize(kind, platform, region, black_box(input));
                canonical.map(|canonical| key.token(&canonical))
            })
        });
    }
    group.finish();
}

fn bench_tokens(c: &mut Criterion) {
    bench_group(c, "token_bare_handle", BARE_HANDLES);
    bench_group(c, "token_profile_url", PROFILE_URLS);
    bench_group(c, "token_other_kinds", OTHER_KINDS);

    let mut group = c.benchmark_group("blake3");
    group.throughput(Throughput::Elements(1));
    let key = [5u8; 32];
    let canonical = b"v1|account|x|jihadi_john";
    group.bench_function("keyed_hash_24_bytes", |b| {
        b.iter(|| blake3::keyed_hash(&key, black_box(canonical)))
    });
    group.bench_function("canonicalize_only_bare_x_handle", |b| {
        b.iter(|| canonicalize(Kind::Account, Some("x"), None, black_box("Jihadi_John")))
    });
    group.bench_function("derive_epoch_key", |b| {
        b.iter(|| {
            EpochKey::derive(
                &FederationId([7; 32]),
                &FederationSecret::from_bytes([9; 32]),
                black_box(1),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
