//! The SealRegistry contract on the local anvil: the committed artifact is what the
//! source compiles to, a root is committed once, the same root again is a no-op,
//! another root for a committed epoch reverts, only sealers may commit or claim,
//! an epoch sealed under a claim since replaced is refused (zombie fencing), and
//! an epoch names a device registry state committed before it.
//! Uses its own dev accounts (#2 to #4) and fresh deployments, so it does not
//! disturb the sealer's contract or nonces.

use std::path::PathBuf;
use std::process::Command;

use alloy::network::EthereumWallet;
use alloy::primitives::FixedBytes;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SealRegistry,
    "../schemas/ledger/SealRegistry.json"
);

// anvil's deterministic dev accounts #2 and #3 (mnemonic "test test ... junk").
const KEY_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const KEY_3: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
// #4 and #5 deploy the fencing and key tests' registries: tests run at once,
// and one account's nonces cannot serve two of them.
const KEY_4: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
const KEY_5: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";

/// The registry state every test's epochs name (committed after each deploy).
fn keys() -> FixedBytes<32> {
    FixedBytes::from([0x4b; 32])
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn provider(key: &str) -> DynProvider {
    let signer: PrivateKeySigner = key.parse().expect("dev key");
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http("http://127.0.0.1:8545".parse().expect("url"))
        .erased()
}

#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn the_committed_artifact_is_what_the_source_compiles_to() {
    let out = Command::new("node")
        .arg(root().join("schemas/ledger/build"))
        .arg("--check")
        .output()
        .expect("running node schemas/ledger/build --check (needs deploy/local/up for solcjs)");
    assert!(
        out.status.success(),
        "schemas/ledger/build --check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn a_root_is_committed_once_and_never_replaced() {
    let owner = provider(KEY_2);
    let registry = SealRegistry::deploy(owner.clone()).await.expect("deploy");
    mined(registry.commitKeys(keys(), 1, 1).send().await).await;
    let epoch = 7u64;
    let root_a = FixedBytes::from([0xaa; 32]);
    let root_b = FixedBytes::from([0xbb; 32]);

    assert_eq!(
        registry.rootOf(epoch).call().await.expect("rootOf"),
        FixedBytes::ZERO,
        "a fresh registry knows no epoch"
    );

    let lease = FixedBytes::from([0x11; 16]);
    let parts = vec![0u16, 1];
    registry
        .claim(parts.clone(), lease)
        .send()
        .await
        .expect("claim")
        .get_receipt()
        .await
        .expect("receipt");
    let first = registry
        .commit(epoch, root_a, 3, keys(), parts.clone(), lease)
        .send()
        .await
        .expect("commit")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(first.status());
    let sealed: Vec<_> = first
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<SealRegistry::Sealed>().ok())
        .collect();
    assert_eq!(sealed.len(), 1, "the first commit emits Sealed");
    assert_eq!(sealed[0].inner.data.epochId, epoch);
    assert_eq!(sealed[0].inner.data.root, root_a);
    assert_eq!(sealed[0].inner.data.leafCount, 3);
    assert_eq!(registry.rootOf(epoch).call().await.expect("rootOf"), root_a);

    // The same (epoch, root, count) again: succeeds, changes nothing, emits nothing.
    let again = registry
        .commit(epoch, root_a, 3, keys(), parts.clone(), lease)
        .send()
        .await
        .expect("commit again")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(again.status(), "committing the same root again is a no-op");
    assert!(
        again.inner.logs().is_empty(),
        "a repeated commit emits no event"
    );
    let seal = registry.sealOf(epoch).call().await.expect("sealOf");
    assert_eq!(seal.root, root_a);
    assert_eq!(seal.blockNumber, first.block_number.expect("block"));

    // Another root for the committed epoch reverts, and the first root stays.
    let err = match registry
        .commit(epoch, root_b, 3, keys(), parts.clone(), lease)
        .call()
        .await
    {
        Ok(_) => panic!("a different root for a committed epoch was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("revert"), "unexpected error: {err}");
    assert_eq!(registry.rootOf(epoch).call().await.expect("rootOf"), root_a);

    // An account the owner did not authorize may not commit.
    let stranger = SealRegistry::new(*registry.address(), provider(KEY_3));
    let refused = stranger
        .commit(8, root_b, 1, keys(), parts.clone(), lease)
        .call()
        .await;
    assert!(refused.is_err(), "an unauthorized account committed a root");
    let refused = stranger
        .claim(parts.clone(), FixedBytes::from([0x33; 16]))
        .call()
        .await;
    assert!(
        refused.is_err(),
        "an unauthorized account claimed partitions"
    );
    assert_eq!(
        registry.rootOf(8).call().await.expect("rootOf"),
        FixedBytes::ZERO
    );
}

fn decoded(e: alloy::contract::Error) -> SealRegistry::SealRegistryErrors {
    e.as_decoded_interface_error::<SealRegistry::SealRegistryErrors>()
        .unwrap_or_else(|| panic!("not a SealRegistry error: {e}"))
}

async fn mined(
    call: alloy::contract::Result<
        alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    >,
) {
    let receipt = call.expect("send").get_receipt().await.expect("receipt");
    assert!(receipt.status());
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn an_epoch_sealed_under_a_replaced_claim_is_fenced() {
    let registry = SealRegistry::deploy(provider(KEY_4)).await.expect("deploy");
    mined(registry.commitKeys(keys(), 1, 1).send().await).await;
    let (zombie, owner) = (FixedBytes::from([0xa1; 16]), FixedBytes::from([0xb2; 16]));
    let root = |b: u8| FixedBytes::from([b; 32]);

    mined(registry.claim(vec![0, 1, 2], zombie).send().await).await;
    mined(
        registry
            .commit(10, root(1), 5, keys(), vec![0, 1], zombie)
            .send()
            .await,
    )
    .await;
    // Another sealer is given partition 1 and claims it.
    mined(registry.claim(vec![1], owner).send().await).await;
    assert_eq!(registry.leaseOf(1).call().await.expect("leaseOf"), owner);
    assert_eq!(registry.leaseOf(2).call().await.expect("leaseOf"), zombie);

    // The old holder's next epoch covers partition 1: refused, naming it.
    let err = registry
        .commit(11, root(2), 5, keys(), vec![2, 1], zombie)
        .call()
        .await
        .expect_err("an epoch under a replaced claim committed");
    match decoded(err) {
        SealRegistry::SealRegistryErrors::Fenced(f) => {
            assert_eq!((f.epochId, f.partition), (11, 1));
            assert_eq!((f.leasedTo, f.offered), (owner, zombie));
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    // Its partitions it still holds alone: accepted.
    mined(
        registry
            .commit(12, root(3), 2, keys(), vec![2], zombie)
            .send()
            .await,
    )
    .await;
    // The new owner commits under its claim.
    mined(
        registry
            .commit(13, root(4), 7, keys(), vec![1], owner)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        registry.rootOf(11).call().await.expect("rootOf"),
        FixedBytes::ZERO
    );
    assert_eq!(registry.rootOf(13).call().await.expect("rootOf"), root(4));
    // An epoch committed before the claim changed may be committed again (a
    // sealer learning its commit stands): a no-op, whoever holds the lease now.
    mined(
        registry
            .commit(10, root(1), 5, keys(), vec![0, 1], zombie)
            .send()
            .await,
    )
    .await;

    // A claim id is used once: the zombie's cannot take partition 1 back (its
    // fenced epoch stays fenced), though repeating a claim it holds is a no-op.
    assert!(matches!(
        decoded(
            registry
                .claim(vec![1], zombie)
                .call()
                .await
                .expect_err("reused claim")
        ),
        SealRegistry::SealRegistryErrors::ClaimReused(_)
    ));
    mined(registry.claim(vec![2], zombie).send().await).await;
    assert_eq!(registry.leaseOf(1).call().await.expect("leaseOf"), owner);

    // No claim of zero, and no commit without partitions.
    let zero = FixedBytes::ZERO;
    assert!(matches!(
        decoded(
            registry
                .claim(vec![3], zero)
                .call()
                .await
                .expect_err("zero claim")
        ),
        SealRegistry::SealRegistryErrors::NoHolder(_)
    ));
    assert!(matches!(
        decoded(
            registry
                .commit(14, root(5), 1, keys(), vec![3], zero)
                .call()
                .await
                .expect_err("zero lease")
        ),
        SealRegistry::SealRegistryErrors::NoHolder(_)
    ));
    assert!(matches!(
        decoded(
            registry
                .commit(15, root(6), 1, keys(), vec![], owner)
                .call()
                .await
                .expect_err("no partitions")
        ),
        SealRegistry::SealRegistryErrors::NoPartitions(_)
    ));
}

#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn an_epoch_names_a_registry_state_committed_before_it() {
    let registry = SealRegistry::deploy(provider(KEY_5)).await.expect("deploy");
    let lease = FixedBytes::from([0x5c; 16]);
    mined(registry.claim(vec![0], lease).send().await).await;
    let (state, later) = (FixedBytes::from([0x5a; 32]), FixedBytes::from([0x5b; 32]));
    let root = FixedBytes::from([0x77; 32]);

    // A state the ledger never saw cannot be named: a key made up after the
    // fact has no state to be in.
    assert!(matches!(
        decoded(
            registry
                .commit(21, root, 4, state, vec![0], lease)
                .call()
                .await
                .expect_err("unknown state")
        ),
        SealRegistry::SealRegistryErrors::UnknownKeys(_)
    ));
    assert_eq!(
        registry
            .keySetOf(state)
            .call()
            .await
            .expect("keySetOf")
            .blockNumber,
        0
    );

    mined(registry.commitKeys(state, 1_000, 3).send().await).await;
    let first = registry.keySetOf(state).call().await.expect("keySetOf");
    assert_eq!((first.cutoff, first.devices), (1_000, 3));
    assert_ne!(first.blockNumber, 0);
    // The first commit of a state stands: committing it again changes nothing.
    mined(registry.commitKeys(state, 9_999, 9).send().await).await;
    let again = registry.keySetOf(state).call().await.expect("keySetOf");
    assert_eq!(
        (again.cutoff, again.devices, again.blockNumber),
        (1_000, 3, first.blockNumber)
    );

    mined(
        registry
            .commit(21, root, 4, state, vec![0], lease)
            .send()
            .await,
    )
    .await;
    let seal = registry.sealOf(21).call().await.expect("sealOf");
    assert_eq!((seal.root, seal.keys), (root, state));
    // A retry naming a later state is the same commit: the first state stands.
    mined(registry.commitKeys(later, 2_000, 4).send().await).await;
    mined(
        registry
            .commit(21, root, 4, later, vec![0], lease)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        registry.sealOf(21).call().await.expect("sealOf").keys,
        state
    );

    // Only sealers commit states.
    let stranger = SealRegistry::new(*registry.address(), provider(KEY_3));
    assert!(matches!(
        decoded(
            stranger
                .commitKeys(FixedBytes::from([0x5d; 32]), 1, 1)
                .call()
                .await
                .expect_err("stranger")
        ),
        SealRegistry::SealRegistryErrors::NotSealer(_)
    ));
}

// #6 deploys the registry the in-memory ledger is compared with.
const KEY_6: &str = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";

/// The in-memory ledger the pipeline's unit tests use is only worth its tests
/// if it follows the contract: the same script of calls against both, through
/// the same `Ledger` trait (the EVM side decodes the contract's errors), gives
/// the same outcome at every step.
#[tokio::test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
async fn the_in_memory_ledger_answers_as_the_contract_does() {
    use sealer::ledger::memory::{conformance, MemoryLedger};
    use sealer::ledger::LedgerArgs;

    let dir = std::env::temp_dir().join(format!("sealtrail-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key_file = dir.join("key");
    std::fs::write(&key_file, KEY_6).expect("key file");
    let mut args = LedgerArgs {
        ledger_rpc: "http://127.0.0.1:8545".into(),
        ledger_chain_id: None,
        ledger_contract: None,
        ledger_contract_file: dir.join("contract"),
        ledger_key_file: key_file,
    };
    let address = args.deploy().await.expect("deploy with account #6");
    args.ledger_contract = Some(address.to_string());
    let evm = args.connect().expect("connect");

    let on_chain = conformance::script(&evm, 0, 0).await;
    let in_memory = conformance::script(&MemoryLedger::new(), 0, 0).await;
    assert_eq!(on_chain, conformance::EXPECTED, "the contract");
    assert_eq!(
        in_memory, on_chain,
        "the in-memory ledger against the contract"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
