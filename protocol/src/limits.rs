//! Every limit of the wire format, each with the reason for its value. A remote peer can
//! exceed none of them: anything over a limit is refused before it is decoded or stored.

/// Protocol version carried in every manifest. A manifest of another version is refused;
/// compatible additions use new (ignored) fields instead of a new version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest wire form of a batch, in bytes. Gossipsub bounds a whole RPC frame (protobuf
/// framing, topic, control messages piggybacked on the same frame) by its
/// `max_transmit_size`, 64 KiB by default; 56 KiB leaves 8 KiB of margin for that framing,
/// so a maximal batch always fits one frame.
pub const MAX_BATCH_BYTES: usize = 56 * 1024;

/// Most entries in one batch. 256 × (the typical ~110-byte add plus its 34-byte digest)
/// ≈ 37 KiB, well under [`MAX_BATCH_BYTES`]; publishers also stop filling a batch when its
/// byte size would pass that limit, so larger entries simply make smaller batches.
pub const MAX_ENTRIES_PER_BATCH: usize = 256;

/// Largest encoded entry, in bytes. A maximal add (64-byte category, every optional field)
/// is ~160 bytes; the rest is room for fields added by later versions.
pub const MAX_ENTRY_BYTES: usize = 256;

/// Longest category label, in bytes (e.g. `terrorism/propaganda`).
pub const MAX_CATEGORY_BYTES: usize = 64;

/// Hard ceiling on an add's lifetime (`expires_at − created_at`): 400 days. Rosters and nodes
/// configure shorter retention; nothing may ask to be kept longer than this.
pub const MAX_RETENTION_MS: u64 = 400 * 24 * 60 * 60 * 1000;

/// Largest `activity_per_day` an add may state: ten million posts a day is already beyond
/// any single account; a larger number is an encoding error, not an observation.
pub const MAX_ACTIVITY_PER_DAY: u64 = 10_000_000;

/// Deepest CBOR nesting accepted by the decoders. Our structures nest at most three levels;
/// the limit keeps hostile input from exhausting the stack.
pub const MAX_CBOR_DEPTH: usize = 16;

/// Length of every entry's random salt, in bytes: two equal entries never share a digest,
/// and a digest says nothing about the token it covers.
pub const SALT_BYTES: usize = 16;
