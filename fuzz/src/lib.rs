//! Helpers shared by the fuzz targets: seeded randomness, fixed identities, and the
//! [`KeyLedger`] that replays a session's key updates and checks the frame layer's contract.
//!
//! Nothing here reaches inside a crate: the targets drive the public sans-IO APIs, the same way
//! a driver does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use hush_keys::{IdentityKeyPair, IdentityPublicKey, KeyUpdate, Kid, SenderIndex, StreamContext};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// A deterministic CSPRNG, so every crash reproduces from its input alone.
pub fn rng(seed: u64) -> ChaCha20Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    ChaCha20Rng::from_seed(s)
}

/// The identity key pair of fuzz participant `n` (fixed, so a relay's snapshot can name it).
pub fn identity(n: u8) -> IdentityKeyPair {
    let mut secret = [0x5a; 32];
    secret[0] = n;
    IdentityKeyPair::from_secret_bytes(secret)
}

/// The public key of [`identity`]`(n)`, computed once per process for `n < 16`.
pub fn public_identity(n: u8) -> IdentityPublicKey {
    static KEYS: OnceLock<Vec<IdentityPublicKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| (0..16).map(|i| *identity(i).public()).collect());
    keys.get(usize::from(n))
        .copied()
        .unwrap_or_else(|| *identity(n).public())
}

/// Everything one member's session told its frame layer, replayed: the frame layer's key ring
/// holds exactly one key per KID, so an install of a KID already held, or a retire of one not
/// held, is a broken contract.
#[derive(Debug, Default)]
pub struct KeyLedger {
    /// Receive keys held, by KID value.
    pub receive: BTreeMap<u64, [u8; 32]>,
    /// The send key of each local stream context: (KID, key).
    pub send: BTreeMap<StreamContext, (Kid, [u8; 32])>,
    /// Set once the session said `Removed` (or `StopSend`).
    pub stopped: BTreeSet<StreamContext>,
}

impl KeyLedger {
    /// Applies one update for the member with sender index `me`.
    pub fn apply(&mut self, me: Option<SenderIndex>, update: &KeyUpdate) {
        match update {
            KeyUpdate::InstallReceive { kid, key } => {
                let (_, sender, _) = Kid::unpack(kid.get()).expect("session KIDs unpack");
                assert_ne!(Some(sender), me, "a receive key for our own sender index");
                let old = self.receive.insert(kid.get(), *key.as_bytes());
                assert!(old.is_none(), "two receive keys for {kid:?}");
            }
            KeyUpdate::RetireReceive { kid } => {
                assert!(
                    self.receive.remove(&kid.get()).is_some(),
                    "retired {kid:?}, which was not installed"
                );
            }
            KeyUpdate::SetSend { context, kid, key } => {
                let (ctx, sender, _) = Kid::unpack(kid.get()).expect("session KIDs unpack");
                assert_eq!(ctx, *context, "send KID for another context");
                assert_eq!(Some(sender), me, "send KID with another sender index");
                self.send.insert(*context, (*kid, *key.as_bytes()));
                self.stopped.remove(context);
            }
            KeyUpdate::StopSend { context } => {
                self.send.remove(context);
                self.stopped.insert(*context);
            }
            _ => {}
        }
    }
}
pub mod room;

/// The room secret of shared-secret mode in the fuzz rooms (32 distinct bytes).
pub fn shared_secret() -> hush_keys::SharedSecret {
    let s: [u8; 32] = core::array::from_fn(|i| i as u8 ^ 0x6b);
    hush_keys::SharedSecret::new(&s).expect("32 distinct bytes are accepted")
}
