//! How a rotation plan's secrets are stored under `U`: as the plan always stored them (the
//! serde form of a `[u8; 32]`, a CBOR array of 32 integers), though the plan holds them as
//! `FederationSecret`s, whose bytes are wiped when the plan is dropped. Used through
//! `#[serde(with = "secret_form")]`.

use crossmatch_protocol::FederationSecret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `secret` as a `[u8; 32]`.
pub(super) fn serialize<S: Serializer>(
    secret: &FederationSecret,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    secret.as_bytes().serialize(serializer)
}

/// Reads a `[u8; 32]` as a secret.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<FederationSecret, D::Error> {
    <[u8; 32]>::deserialize(deserializer).map(FederationSecret::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Held(#[serde(with = "super")] FederationSecret);

    fn cbor(value: &impl Serialize) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(value, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_plan_secret_is_stored_as_the_bytes_array_it_always_was() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let written = cbor(&Held(FederationSecret::from_bytes(bytes)));
        assert_eq!(written, cbor(&bytes), "the form plans stored before");
        let read: Held = ciborium::de::from_reader(written.as_slice()).unwrap();
        assert_eq!(read.0, FederationSecret::from_bytes(bytes));
    }
}
