//! Request authentication (reference `storage-and-onion.md` §2.3): an Ed25519 signature over
//! the concatenation of the method's ASCII fields, by the account's key or by a subaccount the
//! account delegated to.
//!
//! Which key verifies: for a `05` account (a Session id, whose 32 bytes are an X25519 key) the
//! client sends `pubkey_ed25519`, which must convert (Edwards → Montgomery) to the account's
//! key; any other account's 32 bytes are its Ed25519 key. A subaccount token
//! (`netprefix ‖ flags ‖ 0 0 ‖ ed25519 key`, 36 bytes) signed by the account key lets the token's
//! key sign requests with the token's permissions.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::UserPubkey;

/// Subaccount permission bits (token byte 1).
pub mod flags {
    /// May retrieve.
    pub const READ: u8 = 0x01;
    /// May store and extend expiries.
    pub const WRITE: u8 = 0x02;
    /// May delete and shorten expiries.
    pub const DELETE: u8 = 0x04;
    /// Valid for accounts of any prefix.
    pub const ANY_PREFIX: u8 = 0x08;
}

/// Bytes of a subaccount token.
pub const TOKEN_LEN: usize = 36;

/// A delegation: the token and the account key's signature over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subaccount {
    /// `netprefix ‖ flags ‖ 0 0 ‖ subaccount Ed25519 key`.
    pub token: [u8; TOKEN_LEN],
    /// The account key's signature over the token.
    pub signature: [u8; 64],
}

/// The authentication fields of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The request signature.
    pub signature: [u8; 64],
    /// The Ed25519 key behind a `05` account.
    pub pubkey_ed25519: Option<[u8; 32]>,
    /// A subaccount signing in the account's name.
    pub subaccount: Option<Subaccount>,
}

/// Why a request's authentication was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `pubkey_ed25519` given for an account that is not a Session id.
    #[error("pubkey_ed25519 is only allowed for 05 accounts")]
    Ed25519NotAllowed,
    /// `pubkey_ed25519` does not convert to the account key.
    #[error("Ed25519 pubkey does not match the account pubkey")]
    KeyMismatch,
    /// The verification key is not a valid Ed25519 point.
    #[error("invalid Ed25519 pubkey")]
    BadKey,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A subaccount that may not do this.
    #[error("subaccount: {0}")]
    Subaccount(&'static str),
}

impl AuthError {
    /// The HTTP status upstream answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Ed25519NotAllowed => 400,
            _ => 401,
        }
    }
}

fn key(bytes: &[u8; 32]) -> Result<VerifyingKey, AuthError> {
    VerifyingKey::from_bytes(bytes).map_err(|_| AuthError::BadKey)
}

fn check(k: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> Result<(), AuthError> {
    k.verify_strict(msg, &Signature::from_bytes(sig))
        .map_err(|_| AuthError::BadSignature)
}

/// The Ed25519 key that speaks for `account`.
pub fn account_key(account: &UserPubkey, ed: Option<&[u8; 32]>) -> Result<VerifyingKey, AuthError> {
    match ed {
        Some(_) if account.prefix != 5 => Err(AuthError::Ed25519NotAllowed),
        Some(ed) => {
            let k = key(ed)?;
            if k.to_montgomery().to_bytes() != account.key {
                return Err(AuthError::KeyMismatch);
            }
            Ok(k)
        }
        None => key(&account.key),
    }
}

/// Verifies `signed` over `msg` for `account`. A subaccount must hold every bit of `need`, be
/// for this account's prefix (or any), and not be revoked (`revoked`; pass a function that
/// always says no for namespaces where revocation does not apply).
pub fn verify(
    account: &UserPubkey,
    signed: &Signed,
    msg: &[u8],
    need: u8,
    revoked: &dyn Fn(&[u8; TOKEN_LEN]) -> bool,
) -> Result<(), AuthError> {
    let account_key = account_key(account, signed.pubkey_ed25519.as_ref())?;
    let Some(sub) = &signed.subaccount else {
        return check(&account_key, msg, &signed.signature);
    };
    let t = &sub.token;
    if revoked(t) {
        return Err(AuthError::Subaccount("token has been revoked"));
    }
    if t[1] & flags::ANY_PREFIX == 0 && t[0] != account.prefix {
        return Err(AuthError::Subaccount("token is for another network prefix"));
    }
    if t[1] & need != need {
        return Err(AuthError::Subaccount("token lacks a required permission"));
    }
    check(&account_key, t, &sub.signature)
        .map_err(|_| AuthError::Subaccount("token signature verification failed"))?;
    let mut sub_key = [0u8; 32];
    sub_key.copy_from_slice(&t[4..]);
    check(&key(&sub_key)?, msg, &signed.signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn never(_: &[u8; TOKEN_LEN]) -> bool {
        false
    }

    fn session(seed: u8) -> (SigningKey, UserPubkey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let x = sk.verifying_key().to_montgomery().to_bytes();
        (sk, UserPubkey { prefix: 5, key: x })
    }

    #[test]
    fn session_accounts_need_the_matching_ed25519_key() {
        let (sk, acct) = session(1);
        let msg = b"retrieve1700000000000";
        let ed = sk.verifying_key().to_bytes();
        let s = Signed {
            signature: sk.sign(msg).to_bytes(),
            pubkey_ed25519: Some(ed),
            subaccount: None,
        };
        assert_eq!(verify(&acct, &s, msg, flags::READ, &never), Ok(()));
        assert_eq!(
            verify(&acct, &s, b"retrieve1700000000001", 0, &never),
            Err(AuthError::BadSignature)
        );
        let (other, _) = session(2);
        let wrong = Signed {
            pubkey_ed25519: Some(other.verifying_key().to_bytes()),
            ..s
        };
        assert_eq!(
            verify(&acct, &wrong, msg, 0, &never),
            Err(AuthError::KeyMismatch)
        );
        // Without pubkey_ed25519 the X25519 bytes are tried as an Ed25519 key: it fails.
        let bare = Signed {
            pubkey_ed25519: None,
            ..s
        };
        assert!(verify(&acct, &bare, msg, 0, &never).is_err());
    }

    #[test]
    fn ed25519_accounts_and_subaccounts() {
        let owner = SigningKey::from_bytes(&[7; 32]);
        let acct = UserPubkey {
            prefix: 3,
            key: owner.verifying_key().to_bytes(),
        };
        let msg = b"delete_all5551700000000000";
        let direct = Signed {
            signature: owner.sign(msg).to_bytes(),
            pubkey_ed25519: None,
            subaccount: None,
        };
        assert_eq!(verify(&acct, &direct, msg, flags::DELETE, &never), Ok(()));
        assert_eq!(
            verify(
                &acct,
                &Signed {
                    pubkey_ed25519: Some([1; 32]),
                    ..direct
                },
                msg,
                0,
                &never
            ),
            Err(AuthError::Ed25519NotAllowed)
        );
        assert_eq!(AuthError::Ed25519NotAllowed.status(), 400);

        let sub = SigningKey::from_bytes(&[8; 32]);
        let token = |prefix: u8, f: u8| {
            let mut t = [0u8; TOKEN_LEN];
            t[0] = prefix;
            t[1] = f;
            t[4..].copy_from_slice(&sub.verifying_key().to_bytes());
            t
        };
        let delegated = |t: [u8; TOKEN_LEN]| Signed {
            signature: sub.sign(msg).to_bytes(),
            pubkey_ed25519: None,
            subaccount: Some(Subaccount {
                token: t,
                signature: owner.sign(&t).to_bytes(),
            }),
        };
        let rw = token(3, flags::READ | flags::WRITE | flags::DELETE);
        assert_eq!(
            verify(&acct, &delegated(rw), msg, flags::DELETE, &never),
            Ok(())
        );
        assert!(matches!(
            verify(
                &acct,
                &delegated(token(3, flags::READ)),
                msg,
                flags::DELETE,
                &never
            ),
            Err(AuthError::Subaccount(_))
        ));
        assert!(matches!(
            verify(
                &acct,
                &delegated(token(5, flags::DELETE)),
                msg,
                flags::DELETE,
                &never
            ),
            Err(AuthError::Subaccount(_))
        ));
        assert_eq!(
            verify(
                &acct,
                &delegated(token(5, flags::DELETE | flags::ANY_PREFIX)),
                msg,
                flags::DELETE,
                &never
            ),
            Ok(())
        );
        assert!(matches!(
            verify(&acct, &delegated(rw), msg, flags::DELETE, &|t| *t == rw),
            Err(AuthError::Subaccount("token has been revoked"))
        ));
        // A token the account did not sign.
        let mut forged = delegated(rw);
        if let Some(s) = forged.subaccount.as_mut() {
            s.signature = sub.sign(&rw).to_bytes();
        }
        assert!(matches!(
            verify(&acct, &forged, msg, flags::DELETE, &never),
            Err(AuthError::Subaccount(_))
        ));
    }
}
