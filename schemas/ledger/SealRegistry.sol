// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title SealRegistry: the ledger side of sealtrail.
/// @notice Each sealed epoch's Merkle root (RFC 6962) is committed here once and can
/// never change. Committing the same (epoch, root, leafCount) again is a no-op, so a
/// sealer that crashed after committing may safely commit again; a different root
/// for a committed epoch is refused.
/// @notice It is also the fence between sealers: each Kafka partition has a lease
/// holder, the claim a sealer made when it was given the partition, and an epoch
/// commits only if every partition it covers is still leased to the claim it was
/// sealed under. A sealer that lost its partitions (paused past its session, say)
/// and wakes finds its later epochs refused, so no two committed epochs cover the
/// same offsets.
/// @notice And it pins device keys: the sealer commits each state of its device
/// registry (a Merkle root over every device's key history) before an epoch
/// checked against it, and the epoch names that root. A key registered later
/// cannot appear in a state an epoch already names, so a verifier holding only
/// the ledger knows which key a device held when its event was sealed.
contract SealRegistry {
    struct Seal {
        bytes32 root;
        uint64 leafCount;
        uint64 blockNumber;
        bytes32 keys;
    }

    /// @notice A committed state of the device registry: the newest registry row
    /// it holds (its version, microseconds since the Unix epoch) and how many
    /// devices it has.
    struct KeySet {
        uint64 cutoff;
        uint64 devices;
        uint64 blockNumber;
    }

    /// @notice Who may commit: the deployer and the sealers it authorizes.
    address public immutable owner;
    mapping(address => bool) public isSealer;
    mapping(uint64 => Seal) private seals;
    /// @notice The claim each Kafka partition is leased to (zero: never claimed).
    mapping(uint16 => bytes16) public leaseOf;
    /// @notice Claims ever made: a claim id is never current again once replaced.
    mapping(bytes16 => bool) public claimed;
    mapping(bytes32 => KeySet) private keySets;

    event Sealed(uint64 indexed epochId, bytes32 root, uint64 leafCount);
    event SealerAuthorized(address sealer, bool allowed);
    event Claimed(bytes16 indexed holder, uint16[] partitions);
    event KeysCommitted(bytes32 indexed keys, uint64 cutoff, uint64 devices);

    error NotSealer(address caller);
    error EmptyRoot(uint64 epochId);
    error RootMismatch(uint64 epochId, bytes32 committed, bytes32 offered);
    error NoHolder();
    error NoPartitions(uint64 epochId);
    error Fenced(uint64 epochId, uint16 partition, bytes16 leasedTo, bytes16 offered);
    error ClaimReused(bytes16 holder);
    error UnknownKeys(uint64 epochId, bytes32 keys);

    constructor() {
        owner = msg.sender;
        isSealer[msg.sender] = true;
    }

    function authorize(address sealer, bool allowed) external {
        if (msg.sender != owner) revert NotSealer(msg.sender);
        isSealer[sealer] = allowed;
        emit SealerAuthorized(sealer, allowed);
    }

    /// @notice Leases `partitions` to `holder`, a claim id fresh for each assignment.
    /// Epochs sealed under an earlier claim of these partitions can no longer commit.
    /// A claim id is used once: the same call again is a no-op (a retry), but an id
    /// used before cannot take partitions back, so a fenced epoch stays fenced.
    function claim(uint16[] calldata partitions, bytes16 holder) external {
        if (!isSealer[msg.sender]) revert NotSealer(msg.sender);
        if (holder == bytes16(0)) revert NoHolder();
        if (claimed[holder]) {
            for (uint256 i = 0; i < partitions.length; i++) {
                if (leaseOf[partitions[i]] != holder) revert ClaimReused(holder);
            }
            return;
        }
        claimed[holder] = true;
        for (uint256 i = 0; i < partitions.length; i++) {
            leaseOf[partitions[i]] = holder;
        }
        emit Claimed(holder, partitions);
    }

    /// @notice Commits a state of the device registry; a no-op for one already
    /// committed (its first commit stands). An empty registry's root is
    /// RFC 6962's empty root, SHA-256 of nothing.
    function commitKeys(bytes32 keys, uint64 cutoff, uint64 devices) external {
        if (!isSealer[msg.sender]) revert NotSealer(msg.sender);
        if (keySets[keys].blockNumber != 0) return;
        keySets[keys] = KeySet(cutoff, devices, uint64(block.number));
        emit KeysCommitted(keys, cutoff, devices);
    }

    /// @notice A committed registry state (zeros if never committed).
    function keySetOf(bytes32 keys) external view returns (uint64 cutoff, uint64 devices, uint64 blockNumber) {
        KeySet storage k = keySets[keys];
        return (k.cutoff, k.devices, k.blockNumber);
    }

    /// @notice Commits an epoch's root; idempotent for the same root and count.
    /// `keys` is the registry state its events were checked against, committed
    /// before; `partitions` are those the epoch has records of, sealed under `holder`.
    function commit(
        uint64 epochId,
        bytes32 root,
        uint64 leafCount,
        bytes32 keys,
        uint16[] calldata partitions,
        bytes16 holder
    ) external {
        if (!isSealer[msg.sender]) revert NotSealer(msg.sender);
        if (root == bytes32(0)) revert EmptyRoot(epochId);
        Seal storage s = seals[epochId];
        // Before the lease: a sealer that committed, then lost its partitions
        // before recording it, may always learn the commit stands.
        if (s.root != bytes32(0) && s.root == root && s.leafCount == leafCount) return;
        if (holder == bytes16(0)) revert NoHolder();
        if (partitions.length == 0) revert NoPartitions(epochId);
        // Before the root: a fenced epoch is fenced, whatever its id collides with.
        for (uint256 i = 0; i < partitions.length; i++) {
            bytes16 leased = leaseOf[partitions[i]];
            if (leased != holder) revert Fenced(epochId, partitions[i], leased, holder);
        }
        if (s.root != bytes32(0)) revert RootMismatch(epochId, s.root, root);
        if (keySets[keys].blockNumber == 0) revert UnknownKeys(epochId, keys);
        seals[epochId] = Seal(root, leafCount, uint64(block.number), keys);
        emit Sealed(epochId, root, leafCount);
    }

    /// @notice The committed root of an epoch, or zero if none.
    function rootOf(uint64 epochId) external view returns (bytes32) {
        return seals[epochId].root;
    }

    /// @notice Root, leaf count, the block it was committed in and the registry
    /// state it was checked against (zeros if none).
    function sealOf(uint64 epochId)
        external
        view
        returns (bytes32 root, uint64 leafCount, uint64 blockNumber, bytes32 keys)
    {
        Seal storage s = seals[epochId];
        return (s.root, s.leafCount, s.blockNumber, s.keys);
    }
}
