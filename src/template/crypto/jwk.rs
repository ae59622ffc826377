//! JWK (RFC 7517, RFC 7518 and RFC 8037) to PEM: `jwkPublicKeyPem` (SubjectPublicKeyInfo) and
//! `jwkPrivateKeyPem` (PKCS#8), as ESO's `runtime/template/v2/jwk.go` (which uses lestrrat-go/jwx
//! and Go's `x509.MarshalPKIXPublicKey` and `x509.MarshalPKCS8PrivateKey`). RSA, EC (P-256, P-384)
//! and Ed25519 keys; private members are checked against the public ones.

use base64::Engine as _;
use der::asn1::{BitString, ObjectIdentifier, OctetString, Uint};
use der::Encode;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::asn1::{alg, any_of, null, OID_EC, OID_ED25519, OID_P256, OID_P384, OID_RSA};
use super::pem_encode;
use super::pkcs8::{pkcs8, EcPrivateKey};

struct Jwk(serde_json::Map<String, serde_json::Value>);

impl Jwk {
    fn parse(input: &[u8]) -> Result<Jwk, String> {
        let value: serde_json::Value = serde_json::from_slice(input).map_err(|_| "the input is not JSON".to_string())?;
        let serde_json::Value::Object(map) = value else {
            return Err("the input is not a JWK (a JSON object)".into());
        };
        if map.contains_key("keys") && !map.contains_key("kty") {
            return Err("the input is a JWK set: pick one key first (e.g. `(index (fromJson .jwks).keys 0) | toJson`)".into());
        }
        Ok(Jwk(map))
    }

    fn str(&self, name: &str) -> Result<&str, String> {
        self.0.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("the JWK has no `{name}` string"))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A base64url member (padding optional).
    fn bytes(&self, name: &str) -> Result<Vec<u8>, String> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        engine.decode(self.str(name)?).map_err(|_| format!("the JWK member `{name}` is not base64url"))
    }

    /// A big-endian unsigned integer member, without leading zeros.
    fn uint(&self, name: &str) -> Result<Vec<u8>, String> {
        let bytes = self.bytes(name)?;
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let trimmed = bytes[start..].to_vec();
        if trimmed.is_empty() {
            return Err(format!("the JWK member `{name}` is zero"));
        }
        Ok(trimmed)
    }

    /// A fixed-size member (EC coordinates and keys), left-padded when shorter.
    fn fixed(&self, name: &str, len: usize) -> Result<Vec<u8>, String> {
        let bytes = self.uint(name).or_else(|_| self.bytes(name))?;
        if bytes.len() > len {
            return Err(format!("the JWK member `{name}` is longer than {len} bytes"));
        }
        Ok([vec![0; len - bytes.len()], bytes].concat())
    }
}

enum JwkKey {
    Rsa { public: rsa::PublicKey, private: Option<Box<rsa::PrivateKey>> },
    Ec { curve: ObjectIdentifier, point: Vec<u8>, d: Option<Vec<u8>> },
    Ed25519 { x: [u8; 32], seed: Option<[u8; 32]> },
}

fn boxed_uint(bytes: &[u8]) -> rsa::BoxedUint {
    rsa::BoxedUint::from_be_slice_vartime(bytes)
}

fn uint_bytes(n: &rsa::BoxedUint) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

fn parse_jwk(input: &[u8], want_private: bool) -> Result<JwkKey, String> {
    let jwk = Jwk::parse(input)?;
    let private = jwk.has("d");
    if want_private && !private {
        return Err("the JWK is a public key (it has no `d`)".into());
    }
    match jwk.str("kty")? {
        "RSA" => {
            let (n, e) = (jwk.uint("n")?, jwk.uint("e")?);
            let public =
                rsa::PublicKey::new(boxed_uint(&n), boxed_uint(&e)).map_err(|_| "the RSA JWK is not a valid public key".to_string())?;
            if !private {
                return Ok(JwkKey::Rsa { public, private: None });
            }
            if jwk.has("oth") {
                return Err("multi-prime RSA JWKs (`oth`) are not supported".into());
            }
            // `from_components` checks d against p and q (or recovers p and q from n, e and d).
            let bits = (n.len() * 8) as u32;
            let num = |name: &str| -> Result<rsa::BoxedUint, String> {
                rsa::BoxedUint::from_be_slice(&jwk.uint(name)?, bits).map_err(|_| format!("the JWK member `{name}` is too large"))
            };
            let primes = if jwk.has("p") && jwk.has("q") { vec![num("p")?, num("q")?] } else { Vec::new() };
            let key = rsa::PrivateKey::from_components(num("n")?, boxed_uint(&e), num("d")?, primes)
                .map_err(|_| "the RSA JWK's private members do not form a valid key".to_string())?;
            for (name, value) in [("dp", rsa_crt(&key, 0)), ("dq", rsa_crt(&key, 1)), ("qi", rsa_crt(&key, 2))] {
                if jwk.has(name) && Some(jwk.uint(name)?) != value {
                    return Err(format!("the RSA JWK member `{name}` does not match the key"));
                }
            }
            Ok(JwkKey::Rsa { public, private: Some(Box::new(key)) })
        }
        "EC" => {
            let (curve, len) = match jwk.str("crv")? {
                "P-256" => (OID_P256, 32),
                "P-384" => (OID_P384, 48),
                _ => return Err("the EC curve is not supported (P-256, P-384)".to_string()),
            };
            let point = [vec![4u8], jwk.fixed("x", len)?, jwk.fixed("y", len)?].concat();
            let valid = match len {
                32 => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
                _ => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
            };
            if !valid {
                return Err("the EC JWK's x and y are not a point on the curve".into());
            }
            let d = if private { Some(jwk.fixed("d", len)?) } else { None };
            if let Some(d) = &d {
                let derived = match len {
                    32 => p256::SecretKey::from_slice(d).ok().map(|k| k.public_key().to_sec1_bytes().to_vec()),
                    _ => p384::SecretKey::from_slice(d).ok().map(|k| k.public_key().to_sec1_bytes().to_vec()),
                };
                match derived {
                    None => return Err("the EC JWK's `d` is not a valid private key".into()),
                    Some(p) if p != point => return Err("the EC JWK's `d` does not match x and y".into()),
                    Some(_) => {}
                }
            }
            Ok(JwkKey::Ec { curve, point, d })
        }
        "OKP" => {
            let crv = jwk.str("crv")?;
            if crv != "Ed25519" {
                return Err("the OKP curve is not supported (Ed25519)".to_string());
            }
            let x: [u8; 32] = jwk.bytes("x")?.try_into().map_err(|_| "the Ed25519 JWK's `x` is not 32 bytes".to_string())?;
            ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| "the Ed25519 JWK's `x` is not a valid public key".to_string())?;
            let seed = if private {
                let d: [u8; 32] = jwk.bytes("d")?.try_into().map_err(|_| "the Ed25519 JWK's `d` is not 32 bytes".to_string())?;
                if ed25519_dalek::SigningKey::from_bytes(&d).verifying_key().to_bytes() != x {
                    return Err("the Ed25519 JWK's `d` does not match `x`".into());
                }
                Some(d)
            } else {
                None
            };
            Ok(JwkKey::Ed25519 { x, seed })
        }
        _ => Err("the JWK key type is not supported (RSA, EC, OKP)".to_string()),
    }
}

/// dp, dq and qi of a two-prime RSA key.
fn rsa_crt(key: &rsa::PrivateKey, which: usize) -> Option<Vec<u8>> {
    use rsa::traits::PrivateKeyParts;
    match which {
        0 => key.dp().map(uint_bytes),
        1 => key.dq().map(uint_bytes),
        _ => key.crt_coefficient().map(|c| uint_bytes(&c)),
    }
}

fn der_err(e: der::Error) -> String {
    format!("could not encode the key ({})", e.kind())
}

pub(super) fn jwk_public_key_pem(input: &[u8]) -> Result<String, String> {
    use rsa::traits::PublicKeyParts;
    let (algorithm, key) = match parse_jwk(input, false)? {
        JwkKey::Rsa { public, .. } => {
            let fields = vec![Uint::new(&uint_bytes(public.n())).map_err(der_err)?, Uint::new(&uint_bytes(public.e())).map_err(der_err)?];
            (alg(OID_RSA, null()), fields.to_der().map_err(der_err)?)
        }
        JwkKey::Ec { curve, point, .. } => (alg(OID_EC, Some(any_of(&curve).map_err(der_err)?)), point),
        JwkKey::Ed25519 { x, .. } => (alg(OID_ED25519, None), x.to_vec()),
    };
    let spki = SubjectPublicKeyInfoOwned { algorithm, subject_public_key: BitString::from_bytes(&key).map_err(der_err)? };
    Ok(pem_encode("PUBLIC KEY", &[spki.to_der().map_err(der_err)?]))
}

pub(super) fn jwk_private_key_pem(input: &[u8]) -> Result<String, String> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let der = match parse_jwk(input, true)? {
        JwkKey::Rsa { private: Some(key), .. } => {
            let primes = key.primes();
            if primes.len() != 2 {
                return Err("multi-prime RSA keys are not supported".into());
            }
            let missing = || "could not compute the RSA CRT values".to_string();
            let parts: Vec<Vec<u8>> = vec![
                vec![0],
                uint_bytes(key.n()),
                uint_bytes(key.e()),
                uint_bytes(key.d()),
                uint_bytes(primes[0].as_ref()),
                uint_bytes(primes[1].as_ref()),
                rsa_crt(&key, 0).ok_or_else(missing)?,
                rsa_crt(&key, 1).ok_or_else(missing)?,
                rsa_crt(&key, 2).ok_or_else(missing)?,
            ];
            let fields = parts.iter().map(|p| Uint::new(p)).collect::<Result<Vec<_>, _>>().map_err(der_err)?;
            pkcs8(alg(OID_RSA, null()), fields.to_der().map_err(der_err)?)?
        }
        JwkKey::Rsa { private: None, .. } => return Err("the JWK is a public key (it has no `d`)".into()),
        JwkKey::Ec { curve, point, d: Some(d) } => {
            // As Go's x509.MarshalPKCS8PrivateKey: the curve in the algorithm, not in the ECPrivateKey.
            let ec = EcPrivateKey {
                version: 1,
                private_key: OctetString::new(d).map_err(der_err)?,
                parameters: None,
                public_key: Some(BitString::from_bytes(&point).map_err(der_err)?),
            };
            pkcs8(alg(OID_EC, Some(any_of(&curve).map_err(der_err)?)), ec.to_der().map_err(der_err)?)?
        }
        JwkKey::Ed25519 { seed: Some(seed), .. } => {
            pkcs8(alg(OID_ED25519, None), OctetString::new(seed.to_vec()).map_err(der_err)?.to_der().map_err(der_err)?)?
        }
        JwkKey::Ec { d: None, .. } | JwkKey::Ed25519 { seed: None, .. } => return Err("the JWK is a public key (it has no `d`)".into()),
    };
    Ok(pem_encode("PRIVATE KEY", &[der]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwk_errors_are_clear() {
        assert_eq!(jwk_public_key_pem(b"{not json SECRET").unwrap_err(), "the input is not JSON");
        assert!(jwk_private_key_pem(br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
            .unwrap_err()
            .contains("public key"));
        assert!(jwk_public_key_pem(br#"{"keys":[]}"#).unwrap_err().contains("JWK set"));
        assert!(jwk_public_key_pem(br#"{"kty":"oct","k":"c2VjcmV0"}"#).unwrap_err().contains("the JWK key type is not supported"));
    }

    #[test]
    fn rfc8037_ed25519_example() {
        // RFC 8037 appendix A.1/A.2; the expected PEM is what `openssl pkey` writes for that seed.
        let jwk = br#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert_eq!(
            jwk_public_key_pem(jwk).unwrap(),
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n"
        );
        assert_eq!(
            jwk_private_key_pem(jwk).unwrap(),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
        );
        let wrong = br#"{"kty":"OKP","crv":"Ed25519","d":"oWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert!(jwk_private_key_pem(wrong).unwrap_err().contains("does not match"));
    }
}
