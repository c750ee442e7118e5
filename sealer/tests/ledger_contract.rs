//! The SealRegistry contract on the local anvil: the committed artifact is what the
//! source compiles to, a root is committed once, the same root again is a no-op,
//! another root for a committed epoch reverts, and only sealers may commit.
//! Uses its own dev accounts (#2, #3) and a fresh deployment, so it does not
//! disturb the sealer's contract or nonces.

use std::path::PathBuf;
use std::process::Command;

use alloy::network::EthereumWallet;
use alloy::primitives::FixedBytes;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

alloy::sol!(
    #[sol(rpc)]
    SealRegistry,
    "../schemas/ledger/SealRegistry.json"
);

// anvil's deterministic dev accounts #2 and #3 (mnemonic "test test ... junk").
const KEY_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const KEY_3: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

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
async fn a_root_is_committed_once_and_never_replaced() {
    let owner = provider(KEY_2);
    let registry = SealRegistry::deploy(owner.clone()).await.expect("deploy");
    let epoch = 7u64;
    let root_a = FixedBytes::from([0xaa; 32]);
    let root_b = FixedBytes::from([0xbb; 32]);

    assert_eq!(
        registry.rootOf(epoch).call().await.expect("rootOf"),
        FixedBytes::ZERO,
        "a fresh registry knows no epoch"
    );

    let first = registry
        .commit(epoch, root_a, 3)
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
        .commit(epoch, root_a, 3)
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
    let err = match registry.commit(epoch, root_b, 3).call().await {
        Ok(_) => panic!("a different root for a committed epoch was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("revert"), "unexpected error: {err}");
    assert_eq!(registry.rootOf(epoch).call().await.expect("rootOf"), root_a);

    // An account the owner did not authorize may not commit.
    let stranger = SealRegistry::new(*registry.address(), provider(KEY_3));
    let refused = stranger.commit(8, root_b, 1).call().await;
    assert!(refused.is_err(), "an unauthorized account committed a root");
    assert_eq!(
        registry.rootOf(8).call().await.expect("rootOf"),
        FixedBytes::ZERO
    );
}
