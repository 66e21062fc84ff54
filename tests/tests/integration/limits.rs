//! A batch of exactly `MAX_BATCH_BYTES` travels by gossip and is applied; one byte more is
//! refused before anything is decoded.

use std::time::Duration;

use ciborium::Value;
use crossmatch_node::local::wait_until;
use crossmatch_node::test_support::federation;
use crossmatch_protocol::limits::{MAX_BATCH_BYTES, MAX_ENTRY_BYTES};
use crossmatch_protocol::{
    Add, BatchHash, BatchPosition, Entry, Evaluation, Handling, Kind, Op, Token, VerifiedBatch,
    sign_encoded_batch,
};

const LIMIT: Duration = Duration::from_secs(60);

/// An add entry padded with an unknown field (ignored by receivers) to exactly `size` bytes.
fn padded_entry(n: u16, size: usize, expires_at_ms: u64) -> Option<Vec<u8>> {
    let entry = Entry {
        salt: [(n % 251) as u8; 16],
        op: Op::Add(Add {
            token: Token(*blake3::hash(&n.to_be_bytes()).as_bytes()),
            kind: Kind::Account,
            category: "terrorism/propaganda".into(),
            handling: Handling::H0,
            evaluation: Evaluation::new('B', 2)?,
            activity_per_day: None,
            expires_at_ms,
            algorithmic: false,
        }),
    };
    let Ok(Value::Map(mut fields)) =
        ciborium::de::from_reader::<Value, _>(entry.encode().as_slice())
    else {
        return None;
    };
    let encode = |fields: &Vec<(Value, Value)>| {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&Value::Map(fields.clone()), &mut bytes).ok()?;
        Some(bytes)
    };
    let base = encode(&fields)?.len();
    // Field 99 costs its key (2 bytes), the byte string's header (1 to 3 bytes) and its bytes;
    // the map header grows by one byte when the field count reaches 24 (it does not here).
    let padding = (0..MAX_ENTRY_BYTES).find(|p| {
        let header = match p {
            0..=23 => 1,
            24..=255 => 2,
            _ => 3,
        };
        base + 2 + header + p == size
    })?;
    fields.push((Value::from(99u64), Value::Bytes(vec![0x5a; padding])));
    encode(&fields).filter(|bytes| bytes.len() == size)
}

fn batch_of_exactly(
    key: &crossmatch_protocol::SigningKey,
    federation_id: &crossmatch_protocol::FederationId,
    position: BatchPosition,
    target: usize,
) -> VerifiedBatch {
    let expires = position.created_at_ms + 86_400_000;
    // As many maximal entries as fit, then one more entry sized to land exactly on the target.
    let full: Vec<Vec<u8>> =
        (0..256u16).filter_map(|n| padded_entry(n, MAX_ENTRY_BYTES, expires)).collect();
    let fitting = (1..=full.len())
        .rev()
        .find(|count| {
            sign_encoded_batch(key, federation_id, position, full[..*count].to_vec()).is_ok()
        })
        .unwrap_or(0);
    for size in (40..=MAX_ENTRY_BYTES).rev() {
        let Some(last) = padded_entry(1000, size, expires) else { continue };
        let mut entries = full[..fitting].to_vec();
        entries.push(last);
        if let Ok(batch) = sign_encoded_batch(key, federation_id, position, entries)
            && batch.to_wire().len() == target
        {
            return batch;
        }
    }
    panic!("no batch of exactly {target} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_exactly_the_maximum_size_is_gossiped_and_applied() {
    let (_dir, mut fed) = federation("max-size", 2);
    fed.start_all().await.unwrap();
    fed.wait_meshed().await.unwrap();
    let key = fed.members()[0].key.clone();
    let now = crossmatch_node::clock::Clock::now_ms(&crossmatch_node::clock::SystemClock);
    // Member 0 has published nothing; its generation after recovery is its next position.
    let (generation, _) = fed.node(0).unwrap().with_engine(|e| e.own_head()).await.unwrap();
    let position =
        BatchPosition { generation, seq: 1, prev: BatchHash::ZERO, epoch: 1, created_at_ms: now };
    let batch = batch_of_exactly(&key, &fed.federation_id(), position, MAX_BATCH_BYTES);
    assert_eq!(batch.to_wire().len(), MAX_BATCH_BYTES);
    fed.node(0).unwrap().mesh().publish(batch.to_wire()).await.unwrap();
    let origin = key.public_key();
    wait_until("member 1 applies the maximal batch", LIMIT, || async {
        fed.node(1)
            .unwrap()
            .with_engine(move |e| {
                e.chain(crossmatch_protocol::FeedId::of(&origin, generation))
                    .map(|c| c.seq)
                    .unwrap_or(0)
            })
            .await
            .unwrap()
            == 1
    })
    .await
    .unwrap();
    let counters = fed.node(1).unwrap().with_engine(|e| e.counters()).await.unwrap();
    assert_eq!(counters.skipped_entries, 0, "the unknown padding field is ignored, not an error");

    // One byte more is refused by size alone.
    let mut oversized = batch.to_wire();
    oversized.push(0);
    let outcome = fed
        .node(1)
        .unwrap()
        .with_engine(move |e| e.ingest_gossip(&oversized))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        crossmatch_node::engine::IngestOutcome::Rejected(crossmatch_protocol::BatchError::TooLarge)
    );
    fed.stop_all().await.unwrap();
}
