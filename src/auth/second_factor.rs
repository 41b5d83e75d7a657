//! Second-factor material: TOTP secrets and codes (RFC 6238: SHA-1, 6 digits, 30 s steps, one
//! step of skew either side, the values authenticator apps support), recovery codes and their
//! keyed hashes, and login challenges. Which step was already used, and which codes are left,
//! is the store's business.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use totp_rs::{Builder, Totp};

/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// Recovery codes a set holds.
pub const RECOVERY_CODES: usize = 10;
/// Base32 characters of a recovery code: 16 × 5 = 80 bits.
const RECOVERY_CHARS: usize = 16;
/// RFC 4648 base32 without padding; the letters and digits that survive being read aloud.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP secret in the clear: only between its generation or unsealing and its use.
pub struct TotpSecret(SecretBox<Vec<u8>>);

/// What an authenticator app needs to enrol.
pub struct Provisioning {
    /// The secret in base32, for typing in by hand.
    pub secret: SecretString,
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…`.
    pub uri: SecretString,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: SecretString,
}

impl TotpSecret {
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    pub fn from_bytes(bytes: SecretBox<Vec<u8>>) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    fn totp(&self, issuer: &str, account: &str) -> anyhow::Result<Totp> {
        Builder::new()
            .with_secret(self.bytes().to_vec())
            .with_account_name(account)
            .with_issuer(Some(issuer))
            .build()
            .map_err(|e| anyhow::anyhow!("TOTP parameters refused: {e:?}"))
    }

    /// The secret, its `otpauth://` URI and QR code, for `account` at `issuer`.
    pub fn provisioning(&self, issuer: &str, account: &str) -> anyhow::Result<Provisioning> {
        let totp = self.totp(issuer, account)?;
        let uri = totp
            .to_url()
            .map_err(|e| anyhow::anyhow!("otpauth URI refused: {e:?}"))?;
        let qr = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)?;
        let svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(Provisioning {
            secret: totp.secret().to_base32().into(),
            uri: uri.into(),
            qr_svg: svg.into(),
        })
    }

    /// The time step `code` belongs to, within one step of `now_secs`; `None` when it is no
    /// code of this secret then. Compares in constant time.
    pub fn matched_step(&self, code: &str, now_secs: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The account name only matters for the URI.
        let totp = self.totp("check", "check").ok()?;
        totp.check(&code, now_secs)
    }
}

/// A new set of recovery codes, `xxxx-xxxx-xxxx-xxxx` in base32 (80 bits each).
pub fn recovery_codes() -> anyhow::Result<Vec<SecretString>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CHARS];
            getrandom::fill(&mut bytes)?;
            // 256 is a multiple of 32: masking keeps every character equally likely.
            let chars: Vec<char> = bytes.iter().map(|b| BASE32[(b & 31) as usize] as char).collect();
            let groups: Vec<String> = chars.chunks(4).map(|g| g.iter().collect()).collect();
            Ok(SecretString::from(groups.join("-")))
        })
        .collect()
}

/// The key recovery codes are hashed under, derived from the sealing key.
pub struct RecoveryKey(SecretBox<[u8; 32]>);

impl RecoveryKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(key)))
    }

    /// HMAC-SHA-256 of the code as typed, without dashes, spaces or letter case; `None` when it
    /// cannot be a recovery code at all.
    pub fn hash(&self, code: &str) -> Option<[u8; 32]> {
        let normal: String = code
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if normal.len() != RECOVERY_CHARS || !normal.bytes().all(|b| BASE32.contains(&b)) {
            return None;
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()).ok()?;
        mac.update(normal.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }
}

/// Whether `hash` is one of `hashes`, comparing in constant time with every one of them
/// whatever matches.
pub fn find_in_constant_time(hash: &[u8; 32], hashes: &[Vec<u8>]) -> Option<usize> {
    use subtle::ConstantTimeEq as _;
    let mut found = None;
    for (i, candidate) in hashes.iter().enumerate() {
        if bool::from(hash.as_slice().ct_eq(candidate)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TotpSecret {
        fn code_at(&self, secs: u64) -> String {
            self.totp("check", "check").unwrap().generate(secs).to_string()
        }
    }

    fn secret() -> TotpSecret {
        // RFC 6238 appendix B's SHA-1 seed.
        TotpSecret::from_bytes(SecretBox::new(Box::new(b"12345678901234567890".to_vec())))
    }

    #[test]
    fn codes_match_rfc_6238_and_one_step_of_skew() {
        // Appendix B: T = 59 s gives 94287082 at 8 digits; at 6 digits, its last six.
        let s = secret();
        assert_eq!(s.code_at(59), "287082");
        assert_eq!(s.matched_step("287082", 59), Some(1));
        assert_eq!(s.matched_step("287 082", 59 + 30), Some(1), "one step late");
        assert_eq!(s.matched_step("287082", 59 + 60), None, "two steps late");
        assert_eq!(s.matched_step("28708", 59), None);
        assert_eq!(s.matched_step("28708a", 59), None);
    }

    #[test]
    fn the_uri_and_qr_code_name_issuer_and_account() {
        let p = secret().provisioning("auth-api", "ada@example.com").unwrap();
        let uri = p.uri.expose_secret();
        assert!(uri.starts_with("otpauth://totp/auth-api:ada%40example.com?"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=auth-api"), "{uri}");
        assert!(p.qr_svg.expose_secret().starts_with("<?xml"));
    }

    #[test]
    fn recovery_codes_are_80_bits_in_four_groups_and_hash_as_typed() {
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        let key = RecoveryKey::new([7; 32]);
        let mut hashes = Vec::new();
        for code in &codes {
            let code = code.expose_secret();
            assert_eq!(code.len(), 19);
            assert_eq!(code.split('-').count(), 4);
            let typed = code.to_lowercase().replace('-', " ");
            assert_eq!(key.hash(code), key.hash(&typed));
            hashes.push(key.hash(code).unwrap().to_vec());
        }
        hashes.dedup();
        assert_eq!(hashes.len(), 10);
        let third = key.hash(codes[2].expose_secret()).unwrap();
        assert_eq!(find_in_constant_time(&third, &hashes), Some(2));
        assert_eq!(find_in_constant_time(&[0; 32], &hashes), None);
        assert_eq!(key.hash("not-a-code"), None);
        assert_ne!(
            RecoveryKey::new([8; 32]).hash(codes[0].expose_secret()),
            key.hash(codes[0].expose_secret())
        );
    }
}
