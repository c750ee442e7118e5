//! RFC 6962 / RFC 9162 Merkle trees: the shape and hashing every epoch tree and
//! every inclusion proof follows, so anyone can check a proof with the RFC alone.
//!
//! leaf hash = SHA-256(0x00 ‖ leaf bytes), node hash = SHA-256(0x01 ‖ left ‖ right);
//! an unpaired last node is promoted, never duplicated. Trees are built here,
//! level by level in one buffer (the sealer's hot path), and checked in the
//! tests against the RFC's vectors and against `rs_merkle`, an independent
//! builder; verification is the RFC's own algorithm (RFC 9162 §2.1.3.2),
//! written independently of the builder.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The root of a tree with no leaves (RFC 6962): SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn leaf_hash(leaf: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(leaf)
        .finalize()
        .into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// One epoch's tree over its leaf hashes: every level in one buffer, leaves
/// first, root last, so building it is one allocation and one pass per level,
/// its tiles are slices of it (`tile::tiles_of`), and a proof is read off it:
/// the sibling at each level where one exists, which is the RFC's audit path.
pub struct EpochTree {
    nodes: Vec<Hash>,
    /// Where each level starts in `nodes`; one more entry, its end.
    starts: Vec<usize>,
}

impl EpochTree {
    /// Builds the tree; `leaves` must not be empty (an empty epoch is not sealed).
    pub fn build(leaves: &[Hash]) -> EpochTree {
        assert!(!leaves.is_empty(), "an epoch tree needs at least one leaf");
        let mut nodes = Vec::with_capacity(2 * leaves.len());
        nodes.extend_from_slice(leaves);
        let mut starts = vec![0, leaves.len()];
        loop {
            let (from, to) = (starts[starts.len() - 2], starts[starts.len() - 1]);
            if to - from == 1 {
                break;
            }
            for i in (from..to).step_by(2) {
                let up = if i + 1 < to {
                    node_hash(&nodes[i], &nodes[i + 1])
                } else {
                    nodes[i] // unpaired: promoted
                };
                nodes.push(up);
            }
            starts.push(nodes.len());
        }
        EpochTree { nodes, starts }
    }

    pub fn root(&self) -> Hash {
        self.nodes[self.nodes.len() - 1]
    }

    pub fn size(&self) -> usize {
        self.starts[1]
    }

    /// Levels, the leaves' and the root's included.
    pub fn height(&self) -> usize {
        self.starts.len() - 1
    }

    /// Level `k` (0: the leaves), left to right; empty past the root.
    pub fn level(&self, k: usize) -> &[Hash] {
        match (self.starts.get(k), self.starts.get(k + 1)) {
            (Some(&from), Some(&to)) => &self.nodes[from..to],
            _ => &[],
        }
    }

    /// The inclusion proof of leaf `index`: sibling hashes from the leaf to the root.
    pub fn proof(&self, index: usize) -> Vec<Hash> {
        let mut proof = Vec::with_capacity(self.height());
        let mut i = index;
        for k in 0..self.height() - 1 {
            if let Some(sibling) = self.level(k).get(i ^ 1) {
                proof.push(*sibling);
            }
            i >>= 1;
        }
        proof
    }
}

/// RFC 9162 §2.1.3.2: does `proof` put `leaf` at `index` of a tree of `size`
/// leaves with this `root`?
pub fn verify(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    fold(leaf, index, size, proof).is_some_and(|r| r == *root)
}

/// The root that `proof` leads to from `leaf` at `index` of a tree of `size`
/// leaves (RFC 9162 §2.1.3.2), or None when the proof has the wrong shape for
/// that position (too short, too long, index out of range). Knowing the root a
/// proof leads to, not just whether it matches, tells a bad proof from a
/// tampered root.
pub fn fold(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs of the RFC 6962 test vectors (certificate-transparency's tree tests).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    /// Their tree roots for the first 1..=8 leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn vector_leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    #[test]
    fn empty_leaf_hash_matches_the_rfc() {
        assert_eq!(hex::encode(leaf_hash(b"")), ROOTS[0]);
    }

    #[test]
    fn roots_match_the_rfc_6962_vectors() {
        let leaves = vector_leaves();
        for n in 1..=8 {
            assert_eq!(
                hex::encode(EpochTree::build(&leaves[..n]).root()),
                ROOTS[n - 1],
                "{n} leaves"
            );
        }
    }

    /// rs_merkle, built by others, gives the same roots (with RFC 6962's node
    /// prefix; an unpaired node is promoted in both).
    #[test]
    fn roots_match_an_independent_builder() {
        #[derive(Clone)]
        struct Rfc6962;
        impl rs_merkle::Hasher for Rfc6962 {
            type Hash = Hash;
            fn hash(data: &[u8]) -> Hash {
                Sha256::digest(data).into()
            }
            fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
                right.map_or(*left, |r| node_hash(left, r))
            }
            fn hash_size() -> usize {
                32
            }
        }
        let leaves: Vec<Hash> = (0u32..1100).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        for n in (1..=300).chain([511, 512, 513, 1023, 1024, 1025, 1100]) {
            let theirs = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves[..n]).root();
            assert_eq!(
                Some(EpochTree::build(&leaves[..n]).root()),
                theirs,
                "{n} leaves"
            );
        }
    }

    #[test]
    fn audit_paths_match_the_rfc_6962_vectors() {
        let leaves = vector_leaves();
        let path = |n: usize, i: usize| -> Vec<String> {
            EpochTree::build(&leaves[..n])
                .proof(i)
                .iter()
                .map(hex::encode)
                .collect()
        };
        assert_eq!(path(1, 0), Vec::<String>::new());
        assert_eq!(
            path(8, 0),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
            ]
        );
        assert_eq!(
            path(8, 5),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
            ]
        );
        assert_eq!(
            path(3, 2),
            ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]
        );
        assert_eq!(
            path(5, 1),
            [
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
            ]
        );
    }

    /// The RFC's recursive definition, as a reference for the builder.
    fn mth(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn property_every_proof_verifies_and_a_flipped_leaf_proof_index_or_root_fails() {
        let mut rng = Rng(0x5eed);
        for size in (1..=70).chain([127, 128, 129, 1000, 1025]) {
            let leaves: Vec<Hash> = (0..size)
                .map(|i| leaf_hash(&(i as u64 ^ rng.next()).to_le_bytes()))
                .collect();
            let tree = EpochTree::build(&leaves);
            let root = tree.root();
            assert_eq!(
                root,
                mth(&leaves),
                "builder agrees with the RFC definition for {size}"
            );
            let checks: Vec<usize> = if size <= 70 {
                (0..size).collect()
            } else {
                (0..40).map(|_| rng.below(size as u64) as usize).collect()
            };
            for i in checks {
                let proof = tree.proof(i);
                let (n, idx) = (size as u64, i as u64);
                assert!(
                    verify(&leaves[i], idx, n, &proof, &root),
                    "size {size} index {i}"
                );
                let bit = |h: &Hash, rng: &mut Rng| {
                    let mut h = *h;
                    let b = rng.below(256) as usize;
                    h[b / 8] ^= 1 << (b % 8);
                    h
                };
                assert!(
                    !verify(&bit(&leaves[i], &mut rng), idx, n, &proof, &root),
                    "flipped leaf"
                );
                assert!(
                    !verify(&leaves[i], idx, n, &proof, &bit(&root, &mut rng)),
                    "flipped root"
                );
                if !proof.is_empty() {
                    let mut p = proof.clone();
                    let j = rng.below(p.len() as u64) as usize;
                    p[j] = bit(&p[j], &mut rng);
                    assert!(!verify(&leaves[i], idx, n, &p, &root), "flipped proof");
                    assert!(
                        !verify(&leaves[i], idx, n, &proof[..proof.len() - 1], &root),
                        "short proof"
                    );
                }
                let other = (idx + 1 + rng.below(n.max(2) - 1)) % n;
                if other != idx && leaves[other as usize] != leaves[i] {
                    assert!(!verify(&leaves[i], other, n, &proof, &root), "wrong index");
                }
                // The tree size is not bound by the path alone (RFC 9162 leaves that to
                // the signed tree head); here the ledger commits leafCount with the root,
                // and a verifier takes the size from there. An index past it never verifies.
                assert!(!verify(&leaves[i], n, n, &proof, &root), "index == size");
            }
        }
    }
}
