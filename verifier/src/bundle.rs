//! Proof bundles: everything needed to check one event against the ledger without
//! the operator's database, in one JSON document (`schemas/proof_bundle.schema.json`).
//! Hashes and bytes are lowercase hex without a prefix; EVM addresses and
//! transaction hashes keep their usual 0x form.
//!
//! Format 2 carries no device key of its own: it carries the device's leaf in
//! the registry state the epoch's commit names on the ledger, with its proof
//! (`keyset`), so the key comes from what the ledger pins, never from the
//! bundle's author.

use serde::{Deserialize, Serialize};

use crate::keyset::KeyProof;
use crate::proof::Hash;
use crate::verify::{Evidence, LedgerSeal};

pub const FORMAT: &str = "sealtrail-proof-bundle/2";
/// Bundles of this format carried the device key itself, which proved nothing.
const FORMAT_WITHOUT_KEY_PROOF: &str = "sealtrail-proof-bundle/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub event_id: String,
    /// The leaf bytes: a scan event's Avro datum, or a kept EPCIS event's whole
    /// record (`schemas::leaf`).
    pub payload: String,
    pub leaf_hash: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub proof: Vec<String>,
    pub root: String,
    pub epoch_id: u64,
    pub device_id: String,
    /// The root of the device registry state the epoch's commit names.
    pub device_keys_root: String,
    /// The signing device's leaf in that state: its whole key history.
    pub device_keys_leaf: String,
    pub device_keys_index: u64,
    pub device_keys_size: u64,
    /// Sibling hashes from the device's leaf up to `device_keys_root`.
    pub device_keys_proof: Vec<String>,
    pub chain_id: u64,
    pub contract: String,
    pub tx_hash: String,
    pub block: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("bundle field '{field}': {problem}")]
pub struct BundleError {
    pub field: String,
    pub problem: String,
}

fn hash(field: &str, text: &str) -> Result<Hash, BundleError> {
    let bytes = hex::decode(text).map_err(|e| BundleError {
        field: field.into(),
        problem: format!("not hex: {e}"),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| BundleError {
        field: field.into(),
        problem: format!("{} bytes, a SHA-256 hash is 32", b.len()),
    })
}

/// A bundle's fields decoded from hex, ready to be checked.
pub struct Decoded {
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
    pub root: Hash,
    pub keys_root: Hash,
    pub keys: KeyProof,
}

fn hex_field(field: &str, text: &str) -> Result<Vec<u8>, BundleError> {
    hex::decode(text).map_err(|e| BundleError {
        field: field.into(),
        problem: format!("not hex: {e}"),
    })
}

fn hashes(field: &str, texts: &[String]) -> Result<Vec<Hash>, BundleError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, p)| hash(&format!("{field}[{i}]"), p))
        .collect()
}

impl Bundle {
    pub fn decode(&self) -> Result<Decoded, BundleError> {
        if self.format != FORMAT {
            return Err(BundleError {
                field: "format".into(),
                problem: if self.format == FORMAT_WITHOUT_KEY_PROOF {
                    format!("'{}' carries no proof of its device key; ask for the bundle again ('{FORMAT}')", self.format)
                } else {
                    format!("'{}' is not '{FORMAT}'", self.format)
                },
            });
        }
        Ok(Decoded {
            payload: hex_field("payload", &self.payload)?,
            leaf_hash: hash("leaf_hash", &self.leaf_hash)?,
            proof: hashes("proof", &self.proof)?,
            root: hash("root", &self.root)?,
            keys_root: hash("device_keys_root", &self.device_keys_root)?,
            keys: KeyProof {
                leaf: hex_field("device_keys_leaf", &self.device_keys_leaf)?,
                index: self.device_keys_index,
                size: self.device_keys_size,
                proof: hashes("device_keys_proof", &self.device_keys_proof)?,
            },
        })
    }

    /// The evidence this bundle gives, with what the ledger says and the device
    /// key proven under the registry state the ledger pins (None if unproven).
    pub fn evidence<'a>(
        &'a self,
        d: &'a Decoded,
        ledger: Option<LedgerSeal>,
        device_key: Option<[u8; 32]>,
    ) -> Evidence<'a> {
        Evidence {
            event_id: &self.event_id,
            payload: &d.payload,
            stored_leaf_hash: Some(d.leaf_hash),
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            proof: &d.proof,
            epoch_id: self.epoch_id,
            epoch_root: d.root,
            device_key,
            ledger,
            // A bundle carries the payload alone: nothing beside it to compare.
            columns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            format: FORMAT.into(),
            event_id: "e".into(),
            payload: "00ff".into(),
            leaf_hash: "11".repeat(32),
            leaf_index: 0,
            tree_size: 1,
            proof: vec![],
            root: "22".repeat(32),
            epoch_id: 1,
            device_id: "d".into(),
            device_keys_root: "33".repeat(32),
            device_keys_leaf: "5e".into(),
            device_keys_index: 0,
            device_keys_size: 1,
            device_keys_proof: vec![],
            chain_id: 31337,
            contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
            tx_hash: format!("0x{}", "44".repeat(32)),
            block: 3,
        }
    }

    #[test]
    fn decodes_and_names_the_bad_field() {
        let b = bundle();
        let d = b.decode().unwrap();
        assert_eq!(d.payload, vec![0, 0xff]);
        assert_eq!(d.root, [0x22; 32]);

        let mut short = bundle();
        short.proof = vec!["ab".into()];
        let e = short.decode().err().unwrap();
        assert_eq!(e.field, "proof[0]");
        let mut wrong = bundle();
        wrong.format = "other/9".into();
        assert_eq!(wrong.decode().err().unwrap().field, "format");
        let mut old = bundle();
        old.format = "sealtrail-proof-bundle/1".into();
        assert!(old
            .decode()
            .err()
            .unwrap()
            .problem
            .contains("no proof of its device key"));
        let mut keys = bundle();
        keys.device_keys_proof = vec!["11".repeat(32), "zz".into()];
        assert_eq!(keys.decode().err().unwrap().field, "device_keys_proof[1]");
    }

    #[test]
    fn round_trips_through_json_and_refuses_unknown_fields() {
        let text = serde_json::to_string(&bundle()).unwrap();
        assert_eq!(serde_json::from_str::<Bundle>(&text).unwrap(), bundle());
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<Bundle>(v).is_err());
    }

    #[test]
    fn the_json_schema_names_exactly_the_fields_a_bundle_has() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/proof_bundle.schema.json")).unwrap();
        let bundle = serde_json::to_value(bundle()).unwrap();
        let mut fields: Vec<&str> = bundle
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        fields.sort();
        required.sort();
        properties.sort();
        assert_eq!(fields, required);
        assert_eq!(fields, properties);
        assert_eq!(schema["properties"]["format"]["const"], FORMAT);
    }
}
