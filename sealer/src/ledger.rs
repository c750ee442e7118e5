//! The ledger epoch roots are anchored on. One trait, so other chains or backends
//! can be added; the EVM one (the `SealRegistry` contract in `schemas/ledger/`,
//! spoken to with alloy) ships. Commits are idempotent: the same (epoch, root)
//! again is a no-op on the contract, so retrying after a crash is always safe.
//! The ledger also fences sealers: a sealer claims the partitions it is given,
//! and an epoch commits only under the claim still current for its partitions.
//! And it pins device keys: each epoch names the registry state (`keyset`) its
//! events were checked against, committed before it.

use std::future::Future;
use std::path::PathBuf;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, FixedBytes};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::Args;

use crate::proof::Hash;

pub mod memory;

alloy::sol!(
    #[sol(rpc)]
    SealRegistry,
    "../schemas/ledger/SealRegistry.json"
);

/// Where a committed root landed.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub tx: String,
    pub block: u64,
}

/// What the ledger holds for an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnLedger {
    pub root: Hash,
    pub leaf_count: u64,
    pub block: u64,
    /// The root of the device registry state the epoch was checked against.
    pub keys: Hash,
}

/// A claim on partitions, fresh for each assignment (zero is refused).
pub type Lease = [u8; 16];

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The epoch was sealed under a claim no longer current for one of its
    /// partitions: another sealer owns it now. The epoch is void, never sealed.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The ledger cannot be reached or did not answer: try again later.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The ledger refused: a different root is already committed for the epoch.
    #[error("ledger refused the commit: {0}")]
    Refused(String),
}

pub trait Ledger: Send + Sync + 'static {
    /// Leases `partitions` to `lease`: epochs sealed under earlier claims of
    /// them can no longer commit.
    fn claim(
        &self,
        partitions: &[u16],
        lease: Lease,
    ) -> impl Future<Output = Result<Anchor, LedgerError>> + Send;
    /// Commits a device registry state (`keyset`); a no-op for one committed before.
    fn commit_keys(
        &self,
        keys: Hash,
        cutoff: u64,
        devices: u64,
    ) -> impl Future<Output = Result<Anchor, LedgerError>> + Send;
    /// Commits an epoch's root, checked against the registry state `keys`.
    fn commit(
        &self,
        epoch_id: u64,
        root: Hash,
        leaf_count: u64,
        keys: Hash,
        partitions: &[u16],
        lease: Lease,
    ) -> impl Future<Output = Result<Anchor, LedgerError>> + Send;
    fn seal_of(
        &self,
        epoch_id: u64,
    ) -> impl Future<Output = Result<Option<OnLedger>, LedgerError>> + Send;
    /// A device registry state committed on the ledger: its cutoff (the newest
    /// registry row version it holds), device count and block; None if never.
    fn key_set_of(
        &self,
        keys: Hash,
    ) -> impl Future<Output = Result<Option<(u64, u64, u64)>, LedgerError>> + Send;
}

/// How to reach the EVM ledger; flags or `SEALTRAIL_LEDGER_*`.
#[derive(Args, Debug, Clone)]
pub struct LedgerArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(
        long,
        env = "SEALTRAIL_LEDGER_RPC",
        default_value = "http://127.0.0.1:8545",
        global = true
    )]
    pub ledger_rpc: String,
    /// The chain the ledger must be (its chain id): a verifier refuses another.
    #[arg(long, env = "SEALTRAIL_LEDGER_CHAIN_ID", global = true)]
    pub ledger_chain_id: Option<u64>,
    /// SealRegistry address; when not given, read from --ledger-contract-file.
    /// The only contract a verifier trusts: a bundle naming another is refused.
    #[arg(long, env = "SEALTRAIL_LEDGER_CONTRACT", global = true)]
    pub ledger_contract: Option<String>,
    /// File holding the SealRegistry address (written by `sealer ledger deploy`).
    #[arg(
        long,
        env = "SEALTRAIL_LEDGER_CONTRACT_FILE",
        default_value = ".local/ledger/contract",
        global = true
    )]
    pub ledger_contract_file: PathBuf,
    /// File holding the hex private key that signs commits (never logged).
    #[arg(
        long,
        env = "SEALTRAIL_LEDGER_KEY_FILE",
        default_value = ".local/ledger/key",
        global = true
    )]
    pub ledger_key_file: PathBuf,
}

impl LedgerArgs {
    /// The signing key: SEALTRAIL_LEDGER_KEY if set, else the key file.
    fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        let text = match std::env::var("SEALTRAIL_LEDGER_KEY") {
            Ok(k) => k,
            Err(_) => std::fs::read_to_string(&self.ledger_key_file).with_context(|| {
                format!(
                    "reading the ledger key from {} (or set SEALTRAIL_LEDGER_KEY)",
                    self.ledger_key_file.display()
                )
            })?,
        };
        text.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("the ledger key is not a hex secp256k1 private key"))
    }

    pub fn contract_address(&self) -> anyhow::Result<Address> {
        let text = match &self.ledger_contract {
            Some(a) => a.clone(),
            None => std::fs::read_to_string(&self.ledger_contract_file).with_context(|| {
                format!(
                    "no --ledger-contract, and {} is missing: deploy one with `sealer ledger deploy`",
                    self.ledger_contract_file.display()
                )
            })?,
        };
        text.trim()
            .parse()
            .with_context(|| format!("'{}' is not a contract address", text.trim()))
    }

    fn provider(&self) -> anyhow::Result<(DynProvider, Address)> {
        let signer = self.signer()?;
        let from = signer.address();
        let url = self
            .ledger_rpc
            .parse()
            .with_context(|| format!("--ledger-rpc '{}' is not a URL", self.ledger_rpc))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        Ok((provider, from))
    }

    pub fn connect(&self) -> anyhow::Result<EvmLedger> {
        let (provider, from) = self.provider()?;
        Ok(EvmLedger {
            contract: self.contract_address()?,
            provider,
            from: Some(from),
            next_nonce: Default::default(),
        })
    }

    /// A connection that only reads (verification): needs no key.
    pub fn reader(&self) -> anyhow::Result<EvmLedger> {
        self.reader_at(self.contract_address()?)
    }

    /// A reading connection to the SealRegistry at `contract` (a bundle names its own).
    pub fn reader_at(&self, contract: Address) -> anyhow::Result<EvmLedger> {
        let url = self
            .ledger_rpc
            .parse()
            .with_context(|| format!("--ledger-rpc '{}' is not a URL", self.ledger_rpc))?;
        Ok(EvmLedger {
            contract,
            provider: ProviderBuilder::new().connect_http(url).erased(),
            from: None,
            next_nonce: Default::default(),
        })
    }

    /// Deploys a SealRegistry owned by the signing key; returns its address.
    pub async fn deploy(&self) -> anyhow::Result<Address> {
        let (provider, _) = self.provider()?;
        let instance = SealRegistry::deploy(provider)
            .await
            .context("deploying SealRegistry")?;
        Ok(*instance.address())
    }
}

/// The EVM ledger: a SealRegistry contract on a chain reached over JSON-RPC.
pub struct EvmLedger {
    contract: Address,
    provider: DynProvider,
    /// The signing account; None for a reading connection.
    from: Option<Address>,
    /// The nonce to use next (see `commit`).
    next_nonce: std::sync::Mutex<Option<u64>>,
}

impl EvmLedger {
    pub fn address(&self) -> Address {
        self.contract
    }

    pub async fn chain_id(&self) -> Result<u64, LedgerError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))
    }

    /// The newest block's number.
    pub async fn head(&self) -> Result<u64, LedgerError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))
    }

    /// The block a transaction was mined in and whether it succeeded; None if the
    /// chain does not know the transaction.
    pub async fn transaction(&self, hash: &str) -> Result<Option<(u64, bool)>, LedgerError> {
        let hash: FixedBytes<32> = hash
            .parse()
            .map_err(|_| LedgerError::Refused(format!("'{hash}' is not a transaction hash")))?;
        let receipt = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        Ok(receipt.map(|r| (r.block_number.unwrap_or_default(), r.status())))
    }

    /// Whether the contract at the address runs the SealRegistry this sealer
    /// was built with; None if there is no contract there (a fresh anvil).
    pub async fn runs_this_registry(&self) -> Result<Option<bool>, LedgerError> {
        let code = self
            .provider
            .get_code_at(self.contract)
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        if code.is_empty() {
            return Ok(None);
        }
        // The runtime code holds the owner (an immutable), so it differs from
        // the artifact's: ask for what this version added, pinned device keys.
        let registry = SealRegistry::new(self.contract, &self.provider);
        Ok(Some(
            registry.keySetOf(FixedBytes::ZERO).call().await.is_ok(),
        ))
    }
}

/// What a refused or failed transaction means, from the contract's own error
/// when the node returns one (never from the message's wording).
fn classify(e: alloy::transports::TransportError) -> LedgerError {
    use SealRegistry::SealRegistryErrors as E;
    let decoded = e
        .as_error_resp()
        .and_then(|r| r.as_decoded_interface_error::<E>());
    match decoded {
        Some(E::Fenced(f)) => LedgerError::Fenced(format!(
            "epoch {} covers partition {}, leased to claim {} since, not to {}",
            f.epochId, f.partition, f.leasedTo, f.offered
        )),
        Some(E::RootMismatch(m)) => LedgerError::Refused(format!(
            "epoch {} has root {} committed, not {}",
            m.epochId, m.committed, m.offered
        )),
        Some(E::NotSealer(n)) => {
            LedgerError::Refused(format!("{} is not authorized to seal", n.caller))
        }
        Some(E::EmptyRoot(_)) => LedgerError::Refused("an empty root".into()),
        Some(E::NoHolder(_)) => LedgerError::Refused("a claim of zero".into()),
        Some(E::ClaimReused(c)) => {
            LedgerError::Refused(format!("claim {} was used before", c.holder))
        }
        Some(E::NoPartitions(p)) => {
            LedgerError::Refused(format!("epoch {} names no partition", p.epochId))
        }
        // Committed just before, so only a chain that lost its last blocks:
        // committing the state again sets it right (`keyset::Pins` forgets what
        // it committed when a commit finds the ledger unavailable).
        Some(E::UnknownKeys(k)) => LedgerError::Unavailable(format!(
            "epoch {} names device registry state {}, which the ledger does not have",
            k.epochId, k.keys
        )),
        None if e.as_error_resp().and_then(|r| r.as_revert_data()).is_some() => {
            LedgerError::Refused(e.to_string())
        }
        None => LedgerError::Unavailable(e.to_string()),
    }
}

/// The node refused the transaction's nonce as already used: a JSON-RPC error
/// answer (not a transport failure, whatever its text) whose message is the
/// one geth, anvil and reth give for it (geth's `ErrNonceTooLow`). Nodes send
/// no code of their own for it (geth answers -32000 for every refusal).
fn nonce_too_low(e: &alloy::transports::TransportError) -> bool {
    e.as_error_resp().is_some_and(|r| {
        r.message
            .get(..13)
            .is_some_and(|m| m.eq_ignore_ascii_case("nonce too low"))
    })
}

impl EvmLedger {
    /// Sends one call to the registry with a nonce we pick ourselves: anvil
    /// restarted from a state dump can count fewer transactions than the nonce
    /// it then demands ("nonce too low"), and a cached nonce can run ahead of a
    /// chain that lost its last blocks. Step past the first, fall back to the
    /// chain's count for the second.
    async fn send(&self, input: Vec<u8>) -> Result<Anchor, LedgerError> {
        use alloy::network::{Ethereum, Network, TransactionBuilder};
        type TransactionRequest = <Ethereum as Network>::TransactionRequest;
        let Some(from) = self.from else {
            return Err(LedgerError::Refused(
                "a reading ledger connection cannot send transactions".into(),
            ));
        };
        for _ in 0..64 {
            let counted = self
                .provider
                .get_transaction_count(from)
                .pending()
                .await
                .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
            let nonce = self
                .next_nonce
                .lock()
                .expect("lock")
                .map_or(counted, |n| n.max(counted));
            let tx = TransactionRequest::default()
                .with_from(from)
                .with_to(self.contract)
                .with_input(input.clone())
                .with_nonce(nonce);
            let pending = match self.provider.send_transaction(tx.clone()).await {
                Ok(p) => p,
                Err(e) if nonce_too_low(&e) => {
                    *self.next_nonce.lock().expect("lock") = Some(nonce + 1);
                    continue;
                }
                Err(e) => {
                    *self.next_nonce.lock().expect("lock") = None;
                    return Err(classify(e));
                }
            };
            *self.next_nonce.lock().expect("lock") = Some(nonce + 1);
            let receipt = pending.get_receipt().await.map_err(|e| {
                *self.next_nonce.lock().expect("lock") = None;
                LedgerError::Unavailable(e.to_string())
            })?;
            if !receipt.status() {
                // It passed estimation and reverted when mined: something changed
                // in between (another sealer's claim, say). Asking again names
                // the contract's error, so a fenced epoch is told from a refused one.
                return Err(match self.provider.call(tx).await {
                    Err(e) => classify(e),
                    Ok(_) => LedgerError::Unavailable(format!(
                        "transaction {} reverted, and the same call succeeds now",
                        receipt.transaction_hash
                    )),
                });
            }
            return Ok(Anchor {
                tx: receipt.transaction_hash.to_string(),
                block: receipt.block_number.unwrap_or_default(),
            });
        }
        Err(LedgerError::Unavailable(
            "the chain keeps answering 'nonce too low'".into(),
        ))
    }
}

impl Ledger for EvmLedger {
    async fn claim(&self, partitions: &[u16], lease: Lease) -> Result<Anchor, LedgerError> {
        use alloy::sol_types::SolCall;
        let call = SealRegistry::claimCall {
            partitions: partitions.to_vec(),
            holder: FixedBytes::from(lease),
        };
        self.send(call.abi_encode()).await
    }

    async fn commit_keys(
        &self,
        keys: Hash,
        cutoff: u64,
        devices: u64,
    ) -> Result<Anchor, LedgerError> {
        use alloy::sol_types::SolCall;
        let call = SealRegistry::commitKeysCall {
            keys: FixedBytes::from(keys),
            cutoff,
            devices,
        };
        self.send(call.abi_encode()).await
    }

    async fn commit(
        &self,
        epoch_id: u64,
        root: Hash,
        leaf_count: u64,
        keys: Hash,
        partitions: &[u16],
        lease: Lease,
    ) -> Result<Anchor, LedgerError> {
        use alloy::sol_types::SolCall;
        let call = SealRegistry::commitCall {
            epochId: epoch_id,
            root: FixedBytes::from(root),
            leafCount: leaf_count,
            keys: FixedBytes::from(keys),
            partitions: partitions.to_vec(),
            holder: FixedBytes::from(lease),
        };
        self.send(call.abi_encode()).await
    }

    async fn seal_of(&self, epoch_id: u64) -> Result<Option<OnLedger>, LedgerError> {
        let registry = SealRegistry::new(self.contract, &self.provider);
        let seal = registry
            .sealOf(epoch_id)
            .call()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        if seal.root == FixedBytes::ZERO {
            return Ok(None);
        }
        Ok(Some(OnLedger {
            root: seal.root.0,
            leaf_count: seal.leafCount,
            block: seal.blockNumber,
            keys: seal.keys.0,
        }))
    }

    async fn key_set_of(&self, keys: Hash) -> Result<Option<(u64, u64, u64)>, LedgerError> {
        let registry = SealRegistry::new(self.contract, &self.provider);
        let k = registry
            .keySetOf(FixedBytes::from(keys))
            .call()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        Ok((k.blockNumber != 0).then_some((k.cutoff, k.devices, k.blockNumber)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::rpc::json_rpc::ErrorPayload;
    use alloy::transports::{RpcError, TransportErrorKind};

    fn answer(code: i64, message: &'static str) -> alloy::transports::TransportError {
        RpcError::ErrorResp(ErrorPayload {
            code,
            message: message.into(),
            data: None,
        })
    }

    #[test]
    fn a_used_nonce_is_told_from_the_node_s_error_answer_only() {
        // geth and anvil word it so, with or without details after it.
        assert!(nonce_too_low(&answer(-32000, "nonce too low")));
        assert!(nonce_too_low(&answer(
            -32003,
            "nonce too low: next nonce 5, tx nonce 4"
        )));
        assert!(nonce_too_low(&answer(-32000, "Nonce too low")));
        // Other refusals, and text that only mentions it, are not.
        assert!(!nonce_too_low(&answer(-32000, "insufficient funds")));
        assert!(!nonce_too_low(&answer(
            -32000,
            "execution reverted: nonce too low"
        )));
        assert!(!nonce_too_low(&answer(-32000, "nonce")));
        let transport: alloy::transports::TransportError =
            TransportErrorKind::custom_str("HTTP 502: upstream says nonce too low");
        assert!(!nonce_too_low(&transport));
    }

    #[test]
    fn contract_errors_are_classified_from_their_decoded_form() {
        use alloy::sol_types::SolError;
        let fenced = SealRegistry::Fenced {
            epochId: 7,
            partition: 2,
            leasedTo: FixedBytes::from([1; 16]),
            offered: FixedBytes::from([2; 16]),
        };
        let revert = |data: Vec<u8>| {
            RpcError::ErrorResp(ErrorPayload {
                code: 3,
                message: "execution reverted".into(),
                data: Some(
                    serde_json::value::to_raw_value(&format!("0x{}", hex::encode(data)))
                        .expect("json"),
                ),
            })
        };
        assert!(matches!(
            classify(revert(fenced.abi_encode())),
            LedgerError::Fenced(_)
        ));
        let mismatch = SealRegistry::RootMismatch {
            epochId: 7,
            committed: FixedBytes::from([3; 32]),
            offered: FixedBytes::from([4; 32]),
        };
        assert!(matches!(
            classify(revert(mismatch.abi_encode())),
            LedgerError::Refused(_)
        ));
        // A revert the contract does not name is a refusal; no answer at all
        // is the ledger being away.
        assert!(matches!(
            classify(revert(vec![1, 2, 3, 4])),
            LedgerError::Refused(_)
        ));
        let away: alloy::transports::TransportError =
            TransportErrorKind::custom_str("connection refused");
        assert!(matches!(classify(away), LedgerError::Unavailable(_)));
    }
}
