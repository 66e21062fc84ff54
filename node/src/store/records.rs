//! The values the store keeps, typed: records, chain heads, remote adds, alerts, fork
//! evidence, quotas and the own feed's position. Each is CBOR (ciborium) under the key the
//! layout table in [`keys`](super::keys) names for it.
//!
//! Wire enums (handling, evaluation, kind, status) and member keys are stored by their names
//! (`"H1"`, `"B2"`, `"account"`, `"referred"`, key hex), exactly as schema version 1 wrote them
//! when these fields were plain strings; `stored_bytes_of_schema_1_decode` proves it against
//! bytes written by that code. [`RemoteAdd`], kept once per remote entry, is written as an
//! array rather than a map ([`compact`](super::compact)), and its map still reads.

use crossmatch_protocol::{
    BatchHash, BatchId, ChainHead, ChainState, Evaluation, FeedId, Handling, Kind, PublicKey,
    Status, Token,
};
use serde::{Deserialize, Serialize};

use super::compact;
use super::imports::RecordImport;

/// A local record id.
pub type RecordId = u64;

/// A raw local record. Never leaves the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Local id.
    pub id: RecordId,
    /// Canonical forms and their tokens.
    pub identifiers: Vec<StoredIdentifier>,
    /// Category label.
    pub category: String,
    /// Handling code.
    #[serde(with = "by_name")]
    pub handling: Handling,
    /// Evaluation (`B2`).
    #[serde(with = "by_name")]
    pub evaluation: Evaluation,
    /// Free-text notes (local only).
    pub notes: String,
    /// Posts per day, if known.
    pub activity_per_day: Option<u64>,
    /// Expiry (Unix ms).
    pub expires_at_ms: u64,
    /// Shared with the federation, or only watched.
    pub shared: bool,
    /// Creation time (Unix ms).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// Made by a community share for an account no analyst had recorded: its add is marked
    /// `algorithmic` (absent before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub algorithmic: bool,
    /// The latest status set here (`POST /v1/records/{id}/status`), and when; absent in
    /// records written before statuses were kept locally.
    #[serde(default, with = "status_by_name", skip_serializing_if = "Option::is_none")]
    pub status: Option<(Status, u64)>,
    /// From a bulk import of old lists: listed by the takedown clock but kept out of its budget
    /// figures and warnings. Written only when true, so other records keep the bytes of
    /// schema version 1; absent: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backlog: bool,
    /// A record of a spread import waiting for quota room (`Q`): a watch until released, then
    /// shared. Written only when true; absent: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_share: bool,
    /// The import row that made it, and the import that created it (a later import's update
    /// keeps it), if an import did.
    /// Written only when set; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<RecordImport>,
}

/// One identifier of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdentifier {
    /// The canonical form (raw data: local only).
    pub canonical: String,
    /// Its token in the record's epoch.
    pub token: Token,
    /// That epoch.
    pub epoch: u32,
}

/// An entry waiting in the outbox: encoded, salted, in its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Token epoch.
    pub epoch: u32,
    /// The encoded protocol entry.
    pub entry: Vec<u8>,
}

/// A chain's head and frozen flag, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChainRecord {
    /// Highest contiguous seq (0: none).
    pub seq: u64,
    /// Its hash.
    pub hash: BatchHash,
    /// Frozen by a fork: nothing past `seq` is accepted.
    pub frozen: bool,
    /// A fork was proved after this seq: batches up to it are still applied (a node that held
    /// less of the chain when it learned of the fork catches up to it), nothing past it, and
    /// the chain is frozen once its head reaches it.
    #[serde(default)]
    pub freeze_at: Option<u64>,
}

impl ChainRecord {
    /// The head as a chain position of `feed`, if it has one.
    pub fn head_of(&self, feed: FeedId) -> Option<BatchId> {
        (self.seq > 0).then(|| feed.batch(self.seq))
    }

    /// The last seq this chain may ever hold, if a fork limits it.
    pub fn limit(&self) -> Option<u64> {
        self.freeze_at.or(self.frozen.then_some(self.seq))
    }

    /// As the protocol's chain state.
    pub fn state(&self) -> ChainState {
        ChainState {
            head: (self.seq > 0).then_some(ChainHead { seq: self.seq, hash: self.hash }),
            frozen: self.frozen,
        }
    }
}

/// Where a stored batch is, by its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLocation {
    /// Origin key.
    pub origin: [u8; 32],
    /// Generation.
    pub generation: u32,
    /// Seq.
    pub seq: u64,
    /// No entry of the stored copy is redacted.
    pub complete: bool,
}

impl BatchLocation {
    /// The stored batch's position.
    pub fn id(&self) -> BatchId {
        BatchId::new(self.origin, self.generation, self.seq)
    }
}

/// Another origin's live `add` of a token. Stored as an array, the fields in this order
/// ([`compact`](super::compact)); a map by field name, the form written before, still reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAdd {
    /// Where the add sits: generation, seq, entry index.
    pub generation: u32,
    /// Seq of its batch.
    pub seq: u64,
    /// Index within the batch.
    pub index: u32,
    /// Epoch of the token.
    pub epoch: u32,
    /// The identifier's kind.
    pub kind: Kind,
    /// Category.
    pub category: String,
    /// Handling code.
    pub handling: Handling,
    /// Evaluation.
    pub evaluation: Evaluation,
    /// Activity per day.
    pub activity_per_day: Option<u64>,
    /// Expiry, capped by this node's retention.
    pub expires_at_ms: u64,
    /// The origin's `created_at`.
    pub created_at_ms: u64,
    /// Local receipt time.
    pub received_at_ms: u64,
    /// Latest status the origin reported, and when.
    pub status: Option<(Status, u64)>,
    /// The origin marked the add as an algorithm's, not an analyst's.
    pub algorithmic: bool,
    /// Local receipt time of the origin's latest add of the token: where the retention of the
    /// token's takedown facts counts from once this add is gone (`engine/takedowns.rs`). A
    /// value written before the field existed reads it as `received_at_ms`.
    pub touched_at_ms: u64,
}

impl Serialize for RemoteAdd {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        compact::positional::<_, RemoteAddRow, _>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for RemoteAdd {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        compact::named_or_positional::<_, RemoteAddNamed, RemoteAddRow, _>(deserializer)
    }
}

/// [`RemoteAdd`] as written now: the fields in declaration order, wire enums by name.
#[derive(Serialize, Deserialize)]
struct RemoteAddRow(
    u32,
    u64,
    u32,
    u32,
    #[serde(with = "by_name")] Kind,
    String,
    #[serde(with = "by_name")] Handling,
    #[serde(with = "by_name")] Evaluation,
    Option<u64>,
    u64,
    u64,
    u64,
    #[serde(with = "status_by_name")] Option<(Status, u64)>,
    bool,
    // Absent from the 14-field form written before; read as 0, then as `received_at_ms`.
    #[serde(default)] u64,
);

/// [`RemoteAdd`] as written before: a map by field name (`algorithmic` absent when false).
#[derive(Deserialize)]
struct RemoteAddNamed {
    generation: u32,
    seq: u64,
    index: u32,
    epoch: u32,
    #[serde(with = "by_name")]
    kind: Kind,
    category: String,
    #[serde(with = "by_name")]
    handling: Handling,
    #[serde(with = "by_name")]
    evaluation: Evaluation,
    activity_per_day: Option<u64>,
    expires_at_ms: u64,
    created_at_ms: u64,
    received_at_ms: u64,
    #[serde(with = "status_by_name")]
    status: Option<(Status, u64)>,
    #[serde(default)]
    algorithmic: bool,
}

impl From<RemoteAdd> for RemoteAddRow {
    fn from(add: RemoteAdd) -> Self {
        Self(
            add.generation,
            add.seq,
            add.index,
            add.epoch,
            add.kind,
            add.category,
            add.handling,
            add.evaluation,
            add.activity_per_day,
            add.expires_at_ms,
            add.created_at_ms,
            add.received_at_ms,
            add.status,
            add.algorithmic,
            add.touched_at_ms,
        )
    }
}

impl From<RemoteAddRow> for RemoteAdd {
    fn from(row: RemoteAddRow) -> Self {
        let RemoteAddRow(
            generation,
            seq,
            index,
            epoch,
            kind,
            category,
            handling,
            evaluation,
            activity_per_day,
            expires_at_ms,
            created_at_ms,
            received_at_ms,
            status,
            algorithmic,
            touched_at_ms,
        ) = row;
        Self {
            generation,
            seq,
            index,
            epoch,
            kind,
            category,
            handling,
            evaluation,
            activity_per_day,
            expires_at_ms,
            created_at_ms,
            received_at_ms,
            status,
            algorithmic,
            touched_at_ms: if touched_at_ms == 0 { received_at_ms } else { touched_at_ms },
        }
    }
}

impl From<RemoteAddNamed> for RemoteAdd {
    fn from(named: RemoteAddNamed) -> Self {
        let RemoteAddNamed {
            generation,
            seq,
            index,
            epoch,
            kind,
            category,
            handling,
            evaluation,
            activity_per_day,
            expires_at_ms,
            created_at_ms,
            received_at_ms,
            status,
            algorithmic,
        } = named;
        Self {
            generation,
            seq,
            index,
            epoch,
            kind,
            category,
            handling,
            evaluation,
            activity_per_day,
            expires_at_ms,
            created_at_ms,
            received_at_ms,
            status,
            algorithmic,
            touched_at_ms: received_at_ms,
        }
    }
}

impl RemoteAdd {
    /// Where the add sits in `origin`'s feed, and its index in the batch.
    pub fn place(&self, origin: [u8; 32]) -> (BatchId, u32) {
        (BatchId::new(origin, self.generation, self.seq), self.index)
    }
}

/// Another origin's live `tag` of a token (keyed by origin, token and pseudonym).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteTag {
    /// Where the tag sits: generation, seq, entry index.
    pub generation: u32,
    /// Seq of its batch.
    pub seq: u64,
    /// Index within the batch.
    pub index: u32,
    /// Expiry, capped by this node's retention.
    pub expires_at_ms: u64,
    /// Local receipt time.
    pub received_at_ms: u64,
}

impl RemoteTag {
    /// Where the tag sits in `origin`'s feed, and its index in the batch.
    pub fn place(&self, origin: [u8; 32]) -> (BatchId, u32) {
        (BatchId::new(origin, self.generation, self.seq), self.index)
    }
}

/// A snapshot of a community this node shared: the tokens it tagged under its pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnSnapshot {
    /// The snapshot's random pseudonym, as published in its tags.
    pub pseudonym: [u8; 16],
    /// The tokens tagged (raw data's tokens: local only).
    pub tokens: Vec<Token>,
    /// Of those, the accounts that no analyst had recorded (made algorithmic records).
    pub algorithmic: u64,
    /// When it was shared (Unix ms).
    pub created_at_ms: u64,
    /// When its tags expire (Unix ms).
    pub expires_at_ms: u64,
    /// Who shared it.
    pub created_by: String,
}

/// Alert states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    /// First raised.
    Open,
    /// Counterparts joined or left.
    Updated,
    /// No counterpart left.
    Closed,
    /// Raised again after closing.
    Reopened,
}

impl AlertState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Open, Self::Updated, Self::Closed, Self::Reopened];

    /// The state's name in the API and the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Updated => "updated",
            Self::Closed => "closed",
            Self::Reopened => "reopened",
        }
    }
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an alert state; its message lists the names [`AlertState::ALL`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlertState;

impl std::fmt::Display for UnknownAlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = AlertState::ALL.iter().map(|state| state.as_str()).collect();
        write!(f, "state is one of {}", names.join(", "))
    }
}

impl std::error::Error for UnknownAlertState {}

impl std::str::FromStr for AlertState {
    type Err = UnknownAlertState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or(UnknownAlertState)
    }
}

/// One counterpart in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterpart {
    /// The counterpart's public key.
    #[serde(with = "by_name")]
    pub origin: PublicKey,
    /// Its add, as received.
    pub add: RemoteAdd,
    /// True when the match was found by a local add of a token already held remotely.
    pub retro: bool,
}

/// One alert per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alert id (local, increasing).
    pub id: u64,
    /// The token (sensitive; shown only as a prefix).
    pub token: Token,
    /// State.
    pub state: AlertState,
    /// Local records holding the token.
    pub records: Vec<RecordId>,
    /// Counterparts.
    pub counterparts: Vec<Counterpart>,
    /// First raised (Unix ms).
    pub opened_at_ms: u64,
    /// Last changed (Unix ms).
    pub updated_at_ms: u64,
    /// Acknowledged by an analyst.
    pub acknowledged: bool,
    /// Change counter, for subscribers.
    pub version: u64,
}

/// Two manifests one origin signed for one position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkEvidence {
    /// The manifest held first.
    pub ours: Vec<u8>,
    /// The conflicting manifest.
    pub theirs: Vec<u8>,
    /// When it was found.
    pub found_at_ms: u64,
}

/// A day's quota use by one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Quota {
    /// Entries accepted.
    pub entries: u64,
    /// Bytes accepted.
    pub bytes: u64,
}

/// Where this node's own live `add` of a token sits in its own feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnAdd {
    /// Generation of its batch.
    pub generation: u32,
    /// Seq of its batch.
    pub seq: u64,
    /// Index within the batch.
    pub index: u32,
}

/// This node's own feed: where it stands and how much of the outbox it has signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OwnFeed {
    /// Current generation.
    pub generation: u32,
    /// Seq of the newest own batch in it (0: none yet).
    pub seq: u64,
    /// Hash of that batch.
    pub hash: BatchHash,
    /// The last outbox seq signed into a batch.
    pub outbox_last: u64,
}

impl OwnAdd {
    /// Where the add sits in the own feed of `origin`, and its index in the batch.
    pub fn place(&self, origin: [u8; 32]) -> (BatchId, u32) {
        (BatchId::new(origin, self.generation, self.seq), self.index)
    }
}

/// Stores a wire enum or key by its name and reads it back by parsing the name.
pub(super) mod by_name {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| D::Error::custom("unknown name"))
    }
}

/// A status and its time, stored as `[name, ms]`.
mod status_by_name {
    use crossmatch_protocol::Status;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(
        value: &Option<(Status, u64)>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(|(status, at_ms)| (status.as_str(), at_ms)).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<(Status, u64)>, D::Error> {
        let Some((name, at_ms)) = Option::<(String, u64)>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let status = name.parse().map_err(|_| D::Error::custom("unknown status"))?;
        Ok(Some((status, at_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::encode;
    use crossmatch_protocol::SigningKey;

    /// Bytes written by schema version 1 when these fields were plain strings.
    fn golden(lines: &[&str]) -> Vec<u8> {
        hex::decode(lines.concat()).expect("golden hex")
    }

    fn decodes_to<T>(bytes: &[u8], expected: &T)
    where
        T: serde::de::DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
    {
        let decoded: T = ciborium::de::from_reader(bytes).expect("golden bytes decode");
        assert_eq!(&decoded, expected);
        assert_eq!(encode(&decoded), bytes, "and encode back to the same bytes");
    }

    /// Like [`decodes_to`], for values now written in another form ([`compact`]).
    fn decodes_from<T>(bytes: &[u8], expected: &T)
    where
        T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let decoded: T = ciborium::de::from_reader(bytes).expect("golden bytes decode");
        assert_eq!(&decoded, expected);
    }

    fn remote_add() -> RemoteAdd {
        RemoteAdd {
            generation: 2,
            seq: 5,
            index: 3,
            epoch: 1,
            kind: Kind::Account,
            category: "propaganda".into(),
            handling: Handling::H2,
            evaluation: "A1".parse().expect("evaluation"),
            activity_per_day: None,
            expires_at_ms: 1_900_000_000_000,
            created_at_ms: 1_800_000_000_000,
            received_at_ms: 1_800_000_000_500,
            status: Some((Status::Referred, 1_800_000_001_000)),
            algorithmic: false,
            // As a value written before the field reads it.
            touched_at_ms: 1_800_000_000_500,
        }
    }

    #[test]
    fn stored_bytes_of_schema_1_decode() {
        let record = Record {
            id: 7,
            identifiers: vec![StoredIdentifier {
                canonical: "v1|account|x|jihadi_john".into(),
                token: Token([0xab; 32]),
                epoch: 1,
            }],
            category: "propaganda".into(),
            handling: Handling::H1,
            evaluation: "B2".parse().expect("evaluation"),
            notes: "seen in 2015".into(),
            activity_per_day: Some(40),
            expires_at_ms: 1_900_000_000_000,
            shared: true,
            created_at_ms: 1_800_000_000_000,
            created_by: "ana".into(),
            algorithmic: false,
            status: None,
            backlog: false,
            pending_share: false,
            import: None,
        };
        decodes_to(
            &golden(&[
                "ab626964076b6964656e7469666965727381a36963616e6f6e6963616c781876317c6163636f756e747c787c",
                "6a69686164695f6a6f686e65746f6b656e5820ababababababababababababababababababababababababab",
                "ababababababab6565706f6368016863617465676f72796a70726f706167616e64616868616e646c696e6762",
                "48316a6576616c756174696f6e624232656e6f7465736c7365656e20696e2032303135706163746976697479",
                "5f7065725f64617918286d657870697265735f61745f6d731b000001ba60d3380066736861726564f56d6372",
                "65617465645f61745f6d731b000001a3185c50006a637265617465645f627963616e61",
            ]),
            &record,
        );
        decodes_from(
            &golden(&[
                "ad6a67656e65726174696f6e02637365710565696e646578036565706f636801646b696e64676163636f756e",
                "746863617465676f72796a70726f706167616e64616868616e646c696e676248326a6576616c756174696f6e",
                "6241317061637469766974795f7065725f646179f66d657870697265735f61745f6d731b000001ba60d33800",
                "6d637265617465645f61745f6d731b000001a3185c50006e72656365697665645f61745f6d731b000001a318",
                "5c51f466737461747573826872656665727265641b000001a3185c53e8",
            ]),
            &remote_add(),
        );
        let alert = Alert {
            id: 3,
            token: Token([0xab; 32]),
            state: AlertState::Reopened,
            records: vec![7, 9],
            counterparts: vec![Counterpart {
                origin: SigningKey::from_seed(&[1; 32]).public_key(),
                add: remote_add(),
                retro: true,
            }],
            opened_at_ms: 1_800_000_000_600,
            updated_at_ms: 1_800_000_002_000,
            acknowledged: false,
            version: 4,
        };
        decodes_from(
            &golden(&[
                "a96269640365746f6b656e5820ababababababababababababababababababababababababababababababab",
                "ab6573746174656852656f70656e6564677265636f7264738207096c636f756e746572706172747381a3666f",
                "726967696e784038613838653364643734303966313935666435326462326433636261356437326361363730",
                "39626631643934313231626633373438383031623430663666356363616464ad6a67656e65726174696f6e02",
                "637365710565696e646578036565706f636801646b696e64676163636f756e746863617465676f72796a7072",
                "6f706167616e64616868616e646c696e676248326a6576616c756174696f6e6241317061637469766974795f",
                "7065725f646179f66d657870697265735f61745f6d731b000001ba60d338006d637265617465645f61745f6d",
                "731b000001a3185c50006e72656365697665645f61745f6d731b000001a3185c51f466737461747573826872",
                "656665727265641b000001a3185c53e865726574726ff56c6f70656e65645f61745f6d731b000001a3185c52",
                "586d757064617465645f61745f6d731b000001a3185c57d06c61636b6e6f776c6564676564f4677665727369",
                "6f6e04",
            ]),
            &alert,
        );
        let chain =
            ChainRecord { seq: 9, hash: BatchHash([0x11; 32]), frozen: false, freeze_at: Some(12) };
        decodes_to(
            &golden(&[
                "a463736571096468617368582011111111111111111111111111111111111111111111111111111111111111",
                "116666726f7a656ef469667265657a655f61740c",
            ]),
            &chain,
        );
        let location = BatchLocation { origin: [0x22; 32], generation: 1, seq: 4, complete: true };
        decodes_to(
            &golden(&[
                "a4666f726967696e982018221822182218221822182218221822182218221822182218221822182218221822",
                "1822182218221822182218221822182218221822182218221822182218226a67656e65726174696f6e016373",
                "65710468636f6d706c657465f5",
            ]),
            &location,
        );
        let evidence = ForkEvidence { ours: vec![1, 2, 3], theirs: vec![4, 5], found_at_ms: 77 };
        decodes_to(
            &golden(&["a3646f75727383010203667468656972738204056b666f756e645f61745f6d73184d"]),
            &evidence,
        );
        decodes_to(
            &golden(&["a267656e74726965730a6562797465731907d0"]),
            &Quota { entries: 10, bytes: 2000 },
        );
        decodes_to(
            &golden(&["a26565706f63680165656e74727983090807"]),
            &OutboxItem { epoch: 1, entry: vec![9, 8, 7] },
        );
    }

    #[test]
    fn remote_adds_are_written_as_arrays_and_read_back() {
        let mut add = remote_add();
        let named = golden(&[
            "ad6a67656e65726174696f6e02637365710565696e646578036565706f636801646b696e64676163636f756e",
            "746863617465676f72796a70726f706167616e64616868616e646c696e676248326a6576616c756174696f6e",
            "6241317061637469766974795f7065725f646179f66d657870697265735f61745f6d731b000001ba60d33800",
            "6d637265617465645f61745f6d731b000001a3185c50006e72656365697665645f61745f6d731b000001a318",
            "5c51f466737461747573826872656665727265641b000001a3185c53e8",
        ]);
        for algorithmic in [false, true] {
            add.algorithmic = algorithmic;
            let bytes = encode(&add);
            assert_eq!(bytes[0], 0x8f, "an array of the 15 fields");
            assert!(
                bytes.len() * 2 < named.len(),
                "{} bytes against {} named",
                bytes.len(),
                named.len()
            );
            let decoded: RemoteAdd = ciborium::de::from_reader(&bytes[..]).expect("decodes");
            assert_eq!(decoded, add);
        }
        // The 14-field form written before the last touch was kept reads it as the receipt.
        let mut add = remote_add();
        add.touched_at_ms = add.received_at_ms + 60_000;
        let bytes = encode(&add);
        let touched_len = 1 + 8; // 0x1b and eight bytes
        let mut before = bytes[..bytes.len() - touched_len].to_vec();
        before[0] = 0x8e;
        let decoded: RemoteAdd = ciborium::de::from_reader(&before[..]).expect("14 fields");
        assert_eq!(decoded, remote_add());
        // A shorter array, or a wrong type in place, is damage.
        let mut short = before.clone();
        short[0] = 0x8d;
        short.pop();
        assert!(ciborium::de::from_reader::<RemoteAdd, _>(&short[..]).is_err());
        let mut swapped = bytes;
        swapped[1] = 0x60; // the generation an empty text string
        assert!(ciborium::de::from_reader::<RemoteAdd, _>(&swapped[..]).is_err());
    }

    #[test]
    fn an_unknown_name_is_damage_not_a_default() {
        let mut add = encode(&remote_add());
        // "H2" → "H9": not a handling code.
        let at = add.windows(2).position(|w| w == b"H2").expect("handling in the bytes");
        add[at + 1] = b'9';
        assert!(ciborium::de::from_reader::<RemoteAdd, _>(&add[..]).is_err());
    }

    #[test]
    fn alert_state_names_round_trip() {
        for state in AlertState::ALL {
            assert_eq!(state.as_str().parse::<AlertState>(), Ok(state));
        }
        assert!("opened".parse::<AlertState>().is_err());
    }
}
