//! Property tests of the wire format: sign/verify round trips, decoders that never panic,
//! redaction that keeps verification, and chain positions against a model node.

use std::collections::{BTreeMap, HashMap};

use crossmatch_protocol::limits::MAX_RETENTION_MS;
use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, ChainHead, ChainState, Entry, EntryProblem, Evaluation,
    FederationId, Handling, Kind, ManifestHeader, Op, Position, PublicKey, Retract, RetractReason,
    SigningKey, Status, StatusUpdate, Tag, Token, position, sign_batch, verify_batch,
    verify_manifest,
};
use proptest::prelude::*;
use proptest::sample::select;

const FEDERATION: FederationId = FederationId([7; 32]);
const CREATED_AT_MS: u64 = 1_800_000_000_000;

fn key() -> SigningKey {
    SigningKey::from_seed(&[1; 32])
}

fn roster() -> Vec<PublicKey> {
    vec![key().public_key()]
}

fn entry() -> impl Strategy<Value = Entry> {
    let token = any::<[u8; 32]>().prop_map(Token);
    let add = (
        token.clone(),
        select(Kind::ALL.to_vec()),
        "[a-z0-9][a-z0-9_./-]{0,63}",
        select(Handling::ALL),
        (select(vec!['A', 'B', 'C', 'X']), 1u8..=4),
        (proptest::option::of(0u64..=10_000_000), any::<bool>()),
        1..=MAX_RETENTION_MS,
    )
        .prop_map(
            |(token, kind, category, handling, (s, i), (activity_per_day, algorithmic), life)| {
                Op::Add(Add {
                    token,
                    kind,
                    category,
                    handling,
                    evaluation: Evaluation::new(s, i).unwrap(),
                    activity_per_day,
                    expires_at_ms: CREATED_AT_MS + life,
                    algorithmic,
                })
            },
        );
    let retract = (token.clone(), select(RetractReason::ALL))
        .prop_map(|(token, reason)| Op::Retract(Retract { token, reason }));
    let status = (token.clone(), select(Status::ALL), any::<u64>())
        .prop_map(|(token, status, at_ms)| Op::Status(StatusUpdate { token, status, at_ms }));
    let tag =
        (token, any::<[u8; 16]>(), 1..=MAX_RETENTION_MS).prop_map(|(token, community, life)| {
            Op::Tag(Tag { token, community, expires_at_ms: CREATED_AT_MS + life })
        });
    (any::<[u8; 16]>(), prop_oneof![add, retract, status, tag])
        .prop_map(|(salt, op)| Entry { salt, op })
}

fn batch_position() -> impl Strategy<Value = BatchPosition> {
    (1u32..5, 1u64..1_000, any::<[u8; 32]>(), 0u32..3).prop_map(|(generation, seq, prev, epoch)| {
        let prev = if generation == 1 && seq == 1 { BatchHash::ZERO } else { BatchHash(prev) };
        BatchPosition { generation, seq, prev, epoch, created_at_ms: CREATED_AT_MS }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_round_trips(
        position in batch_position(),
        entries in proptest::collection::vec(entry(), 1..40),
    ) {
        let batch = sign_batch(&key(), &FEDERATION, position, &entries).unwrap();
        let verified = verify_batch(&batch.to_wire(), &FEDERATION, &roster()[..]).unwrap();
        prop_assert_eq!(&verified, &batch);
        prop_assert_eq!(crossmatch_protocol::claimed_batch_hash(&batch.to_wire(), &FEDERATION), Some(batch.hash()));
        // What the batch claims, read unverified, is what verification finds.
        let (claim, carried) = crossmatch_protocol::claimed_batch(&batch.to_wire(), &FEDERATION).unwrap();
        prop_assert_eq!((claim.origin, &claim.header, claim.hash), (key().public_key().to_bytes(), batch.header(), batch.hash()));
        prop_assert_eq!(carried, entries.len());
        prop_assert_eq!(verified.header().seq, position.seq);
        let decoded: Vec<Entry> = verified.entries().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded, entries);
        let (origin, header, hash) =
            verify_manifest(batch.manifest_bytes(), &FEDERATION, &roster()[..]).unwrap();
        prop_assert_eq!((origin, &header, hash), (key().public_key(), batch.header(), batch.hash()));
    }

    #[test]
    fn redaction_keeps_verification_and_hash(
        entries in proptest::collection::vec(entry(), 1..20),
        redact in proptest::collection::vec(0usize..25, 0..10),
    ) {
        let position = BatchPosition { generation: 1, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: CREATED_AT_MS };
        let batch = sign_batch(&key(), &FEDERATION, position, &entries).unwrap();
        let redacted = batch.redacted(&redact);
        let verified = verify_batch(&redacted.to_wire(), &FEDERATION, &roster()[..]).unwrap();
        prop_assert_eq!(verified.hash(), batch.hash());
        for (index, outcome) in verified.entries().enumerate() {
            if redact.contains(&index) {
                prop_assert_eq!(outcome, Err(EntryProblem::Redacted));
            } else {
                prop_assert_eq!(outcome.as_ref(), Ok(&entries[index]));
            }
        }
        let mut holey = verified;
        prop_assert_eq!(holey.fill_holes(&batch, |_| true), entries.len() - batch.redacted(&redact).entries().filter(Result::is_ok).count());
        prop_assert_eq!(holey, batch);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = verify_batch(&bytes, &FEDERATION, &roster()[..]);
        let _ = crossmatch_protocol::claimed_batch_hash(&bytes, &FEDERATION);
        let _ = crossmatch_protocol::claimed_batch(&bytes, &FEDERATION);
        let _ = crossmatch_protocol::claimed_manifest(&bytes, &FEDERATION);
        let _ = verify_manifest(&bytes, &FEDERATION, &roster()[..]);
        let _ = Entry::decode(&bytes, CREATED_AT_MS);
    }

    /// Mutating any byte of a valid wire form either gets the batch refused or leaves its
    /// identity and every entry that still decodes unchanged: a relay can alter nothing.
    #[test]
    fn mutations_are_refused_or_harmless(
        entries in proptest::collection::vec(entry(), 1..6),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let position = BatchPosition { generation: 1, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: CREATED_AT_MS };
        let batch = sign_batch(&key(), &FEDERATION, position, &entries).unwrap();
        let mut wire = batch.to_wire();
        for (index, mask) in flips {
            let at = index.index(wire.len());
            wire[at] ^= mask;
        }
        if let Ok(mutated) = verify_batch(&wire, &FEDERATION, &roster()[..]) {
            prop_assert_eq!(mutated.hash(), batch.hash());
            for (index, outcome) in mutated.entries().enumerate() {
                if let Ok(entry) = outcome {
                    prop_assert_eq!(&entry, &entries[index]);
                }
            }
        }
    }
}

/// A model node: applies batches through [`position`], holds gaps, freezes on forks.
#[derive(Default)]
struct ModelNode {
    held: BTreeMap<u64, BatchHash>,
    state: ChainState,
    pending: HashMap<BatchHash, ManifestHeader>,
    applied: usize,
    fork_at: Option<u64>,
}

impl ModelNode {
    fn deliver(&mut self, header: &ManifestHeader, hash: BatchHash) {
        self.pending.insert(hash, header.clone());
        // Retry everything pending until nothing changes, as a node does after each apply.
        loop {
            let mut progressed = false;
            let mut candidates: Vec<(BatchHash, ManifestHeader)> =
                self.pending.iter().map(|(h, m)| (*h, m.clone())).collect();
            candidates.sort_by_key(|(h, m)| (m.seq, *h));
            for (hash, header) in candidates {
                match position(&self.state, |seq| self.held.get(&seq).copied(), &header, hash) {
                    Position::Next => {
                        self.held.insert(header.seq, hash);
                        self.state.head = Some(ChainHead { seq: header.seq, hash });
                        self.applied += 1;
                        self.pending.remove(&hash);
                        progressed = true;
                    }
                    Position::Fork { seq, .. } => {
                        self.fork_at = Some(self.fork_at.map_or(seq, |at| at.min(seq)));
                        self.held.retain(|held, _| *held < seq);
                        self.state = ChainState {
                            head: self
                                .held
                                .iter()
                                .next_back()
                                .map(|(s, h)| ChainHead { seq: *s, hash: *h }),
                            frozen: true,
                        };
                        self.pending.remove(&hash);
                        progressed = true;
                    }
                    Position::Duplicate | Position::Frozen | Position::Unjudgeable => {
                        self.pending.remove(&hash);
                    }
                    Position::Gap { .. } => {}
                }
            }
            if !progressed {
                break;
            }
        }
    }
}

fn chain(n: u64, variant: u8) -> Vec<(ManifestHeader, BatchHash)> {
    let mut prev = BatchHash::ZERO;
    (1..=n)
        .map(|seq| {
            let hash =
                BatchHash(*blake3::hash(&[&seq.to_be_bytes()[..], &[variant]].concat()).as_bytes());
            let header = ManifestHeader {
                generation: 1,
                seq,
                prev,
                epoch: 1,
                created_at_ms: 0,
                entry_digests: vec![],
            };
            prev = hash;
            (header, hash)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any delivery order, with duplicates, of an honest chain ends at its last batch, with
    /// each batch applied exactly once.
    #[test]
    fn honest_chain_converges_in_any_order(
        n in 1u64..30,
        order in any::<prop::sample::Index>().prop_flat_map(|_| proptest::collection::vec(any::<prop::sample::Index>(), 0..60)),
        seed in any::<u64>(),
    ) {
        let batches = chain(n, 0);
        let mut node = ModelNode::default();
        let mut deliveries: Vec<usize> = (0..batches.len()).collect();
        deliveries.extend(order.iter().map(|i| i.index(batches.len())));
        shuffle(&mut deliveries, seed);
        for index in deliveries {
            let (header, hash) = &batches[index];
            node.deliver(header, *hash);
        }
        prop_assert_eq!(node.applied as u64, n);
        prop_assert_eq!(node.state.head, batches.last().map(|(h, hash)| ChainHead { seq: h.seq, hash: *hash }));
        prop_assert_eq!(node.fork_at, None);
    }

    /// An origin that signs a second batch at seq k is caught in every delivery order, and the
    /// chain freezes at k − 1.
    #[test]
    fn fork_is_caught_in_any_order(n in 2u64..20, k_pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let honest = chain(n, 0);
        let k = k_pick.index(n as usize) as u64 + 1;
        let (mut fork_header, _) = honest[(k - 1) as usize].clone();
        fork_header.created_at_ms = 1;
        let fork_hash = BatchHash([0xee; 32]);
        let mut deliveries: Vec<Option<usize>> = (0..honest.len()).map(Some).collect();
        deliveries.push(None);
        shuffle(&mut deliveries, seed);
        let mut node = ModelNode::default();
        for delivery in deliveries {
            match delivery {
                Some(index) => node.deliver(&honest[index].0, honest[index].1),
                None => node.deliver(&fork_header, fork_hash),
            }
        }
        prop_assert_eq!(node.fork_at, Some(k), "fork at {} not caught where it happened", k);
        prop_assert!(node.state.frozen);
        prop_assert!(node.state.head.map_or(0, |h| h.seq) < k);
    }
}

fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}
