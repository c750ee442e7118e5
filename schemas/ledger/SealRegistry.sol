// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title SealRegistry: the ledger side of sealtrail.
/// @notice Each sealed epoch's Merkle root (RFC 6962) is committed here once and can
/// never change. Committing the same (epoch, root, leafCount) again is a no-op, so a
/// sealer that crashed after committing may safely commit again; a different root
/// for a committed epoch is refused.
contract SealRegistry {
    struct Seal {
        bytes32 root;
        uint64 leafCount;
        uint64 blockNumber;
    }

    /// @notice Who may commit: the deployer and the sealers it authorizes.
    address public immutable owner;
    mapping(address => bool) public isSealer;
    mapping(uint64 => Seal) private seals;

    event Sealed(uint64 indexed epochId, bytes32 root, uint64 leafCount);
    event SealerAuthorized(address sealer, bool allowed);

    error NotSealer(address caller);
    error EmptyRoot(uint64 epochId);
    error RootMismatch(uint64 epochId, bytes32 committed, bytes32 offered);

    constructor() {
        owner = msg.sender;
        isSealer[msg.sender] = true;
    }

    function authorize(address sealer, bool allowed) external {
        if (msg.sender != owner) revert NotSealer(msg.sender);
        isSealer[sealer] = allowed;
        emit SealerAuthorized(sealer, allowed);
    }

    /// @notice Commits an epoch's root; idempotent for the same root and count.
    function commit(uint64 epochId, bytes32 root, uint64 leafCount) external {
        if (!isSealer[msg.sender]) revert NotSealer(msg.sender);
        if (root == bytes32(0)) revert EmptyRoot(epochId);
        Seal storage s = seals[epochId];
        if (s.root != bytes32(0)) {
            if (s.root == root && s.leafCount == leafCount) return;
            revert RootMismatch(epochId, s.root, root);
        }
        seals[epochId] = Seal(root, leafCount, uint64(block.number));
        emit Sealed(epochId, root, leafCount);
    }

    /// @notice The committed root of an epoch, or zero if none.
    function rootOf(uint64 epochId) external view returns (bytes32) {
        return seals[epochId].root;
    }

    /// @notice Root, leaf count and the block it was committed in (zeros if none).
    function sealOf(uint64 epochId) external view returns (bytes32 root, uint64 leafCount, uint64 blockNumber) {
        Seal storage s = seals[epochId];
        return (s.root, s.leafCount, s.blockNumber);
    }
}
