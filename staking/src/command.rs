//! The `register_service_node` command line: what `prepare_registration` prints on the service
//! node and the operator pastes into the wallet.
//!
//! `register_service_node <fee basis points> <address1> <amount1> [<address2> <amount2> …]
//! <hard fork> <service node pubkey hex> <signature hex>`, amounts in atomic units.

use sispop_chain::crypto::Signature;
use sispop_chain::extra::Registration;
use sispop_chain::{Address, NetworkParams, PublicKey};

/// A command that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Wrong number of words.
    #[error("expected: register_service_node <fee> <address> <amount> [<address> <amount> ...] <hf> <sn pubkey> <signature>")]
    Shape,
    /// A word that does not parse.
    #[error("invalid {0}: {1}")]
    Word(&'static str, String),
}

/// Parses a percentage like `1.1%` or `100` (or basis points with a `bp` suffix) into basis
/// points: lround(percent / 100 · 10000).
pub fn percent_to_basis_points(s: &str) -> Result<u64, CommandError> {
    let t = s.trim();
    if let Some(bp) = t.strip_suffix("bp") {
        return bp
            .trim()
            .parse()
            .map_err(|_| CommandError::Word("fee", s.into()));
    }
    let v: f64 = t
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| CommandError::Word("fee", s.into()))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(CommandError::Word("fee", format!("{s} is outside 0–100%")));
    }
    Ok((v / 100.0 * 10_000.0).round() as u64)
}

/// Formats the command.
pub fn format_command(reg: &Registration, sn_key: &PublicKey, params: &NetworkParams) -> String {
    let mut words = vec!["register_service_node".to_owned(), reg.fee.to_string()];
    for ((s, v), a) in reg
        .public_spend_keys
        .iter()
        .zip(&reg.public_view_keys)
        .zip(&reg.amounts)
    {
        words.push(
            Address {
                spend: *s,
                view: *v,
            }
            .to_string(params),
        );
        words.push(a.to_string());
    }
    words.push(reg.hf_or_expiration.to_string());
    words.push(sn_key.to_hex());
    words.push(hex::encode(reg.signature.0));
    words.join(" ")
}

/// Parses the words after `register_service_node`.
pub fn parse_command(
    args: &[&str],
    params: &NetworkParams,
) -> Result<(Registration, PublicKey), CommandError> {
    if args.len() < 6 || !(args.len() - 4).is_multiple_of(2) {
        return Err(CommandError::Shape);
    }
    let fee: u64 = args[0]
        .parse()
        .map_err(|_| CommandError::Word("fee (basis points)", args[0].into()))?;
    let n = (args.len() - 4) / 2;
    let mut spends = Vec::with_capacity(n);
    let mut views = Vec::with_capacity(n);
    let mut amounts = Vec::with_capacity(n);
    for i in 0..n {
        let addr = Address::parse(args[1 + 2 * i], params)
            .map_err(|e| CommandError::Word("address", e.to_string()))?;
        let amt: u64 = args[2 + 2 * i]
            .parse()
            .map_err(|_| CommandError::Word("amount (atomic units)", args[2 + 2 * i].into()))?;
        spends.push(addr.spend);
        views.push(addr.view);
        amounts.push(amt);
    }
    let rest = &args[args.len() - 3..];
    let hf: u64 = rest[0]
        .parse()
        .map_err(|_| CommandError::Word("hard fork", rest[0].into()))?;
    let sn = PublicKey::from_hex(rest[1])
        .ok_or_else(|| CommandError::Word("service node pubkey", rest[1].into()))?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(rest[2], &mut sig)
        .map_err(|_| CommandError::Word("signature", rest[2].into()))?;
    Ok((
        Registration {
            public_spend_keys: spends,
            public_view_keys: views,
            fee,
            amounts,
            hf_or_expiration: hf,
            signature: Signature(sig),
        },
        sn,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::sign_registration;
    use rand::rngs::OsRng;
    use sispop_chain::crypto::{public_from_secret, random_scalar};
    use sispop_chain::Network;

    #[test]
    fn percent_parsing() {
        assert_eq!(percent_to_basis_points("1.1%"), Ok(110));
        assert_eq!(percent_to_basis_points("100"), Ok(10_000));
        assert_eq!(percent_to_basis_points("0"), Ok(0));
        assert_eq!(percent_to_basis_points("250bp"), Ok(250));
        assert!(percent_to_basis_points("101%").is_err());
        assert!(percent_to_basis_points("x").is_err());
    }

    #[test]
    fn command_round_trip() {
        let params = NetworkParams::get(Network::Devnet);
        let sn = random_scalar(&mut OsRng);
        let a = Address {
            spend: public_from_secret(&random_scalar(&mut OsRng)),
            view: public_from_secret(&random_scalar(&mut OsRng)),
        };
        let reg = sign_registration(&mut OsRng, &sn, 1000, &[(a, 50)], 19);
        let line = format_command(&reg, &public_from_secret(&sn), params);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "register_service_node");
        let (back, key) = parse_command(&words[1..], params).expect("parse");
        assert_eq!(back, reg);
        assert_eq!(key, public_from_secret(&sn));
        assert_eq!(
            parse_command(&words[1..4], params),
            Err(CommandError::Shape)
        );
    }
}
