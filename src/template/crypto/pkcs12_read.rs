//! PKCS#12 files (RFC 7292) to PEM: `pkcs12key`, `pkcs12cert` and their `Pass` forms, as ESO's
//! `runtime/template/v2/pkcs12.go` (go-pkcs12's `DecodeChain`, then the chain ordered as
//! [`super::chain`] does).
//!
//! Reading covers what OpenSSL 3 writes by default (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC,
//! HMAC-SHA256 MAC) and with `-legacy` (RC2-40 and 3DES with the PKCS#12 KDF, HMAC-SHA1 MAC), plus
//! AES-128/192, 2-key 3DES, RC2-128, unencrypted bags, files without a MAC and BER indefinite
//! lengths (as some Java and Windows tools write them). Iteration counts and nesting are bounded.

use der::asn1::{Any, OctetString};
use der::{Decode, Encode, EncodingRules, Sequence};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::asn1::*;
use super::chain::order_chain;
use super::pbe::{bmp_passwords, pkcs12_kdf, Cipher, Hash};
use super::pem_encode;
use super::pkcs8::check_pkcs8;

/// Upper bound on any iteration count read from a file (a hostile count would hang the render).
/// Most iterations of one key derivation (OpenSSL writes 2,048, Windows 2,000, OWASP's PBKDF2
/// advice is 600,000); each derivation also checks the ExternalSecret's CPU budget first, so
/// many entries cannot add up past it.
const MAX_ITERATIONS: u32 = 1_000_000;
/// Nesting limit for safeContents bags.
const MAX_NESTING: usize = 4;

#[derive(Clone, Debug, Sequence)]
struct Pkcs12PbeParams {
    salt: OctetString,
    iterations: u32,
}

/// Why a PKCS#12 file could not be read; the messages quote nothing from the input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum P12Error {
    NotPkcs12,
    WrongPassword,
    Unsupported(String),
    Malformed(&'static str),
    /// The ExternalSecret's CPU budget ran out between key derivations.
    OverBudget,
}

impl P12Error {
    fn message(&self, input: &[u8]) -> String {
        match self {
            P12Error::NotPkcs12 => {
                let looks_base64 =
                    !input.is_empty() && input.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r'));
                if looks_base64 {
                    "the input is not a PKCS#12 file (it looks like base64 text: decode it first, e.g. `b64dec`)".into()
                } else {
                    "the input is not a PKCS#12 file".into()
                }
            }
            P12Error::WrongPassword => "the password is wrong or the PKCS#12 file is damaged".into(),
            P12Error::Unsupported(what) => format!("the PKCS#12 file uses {what}, which is not supported"),
            P12Error::Malformed(what) => format!("the PKCS#12 file is malformed ({what})"),
            P12Error::OverBudget => format!(
                "the templates of this ExternalSecret used more than {} s of CPU time (deriving PKCS#12 keys)",
                crate::template::budget::CPU_BUDGET.as_secs()
            ),
        }
    }
}

/// What a PKCS#12 file holds: private keys (PKCS#8 DER) and certificates (DER), in file order.
#[derive(Debug, Default)]
pub(super) struct P12Contents {
    pub(super) keys: Vec<Vec<u8>>,
    pub(super) certs: Vec<Vec<u8>>,
}

fn ber<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, T::Error> {
    T::from_ber(bytes)
}

fn any_as<'a, T>(any: &'a Any) -> Result<T, der::Error>
where
    T: der::Choice<'a> + der::DecodeValue<'a, Error = der::Error>,
{
    any.decode_as_encoding(EncodingRules::Ber)
}

pub(super) fn read_pkcs12(data: &[u8], password: &[u8]) -> Result<P12Contents, P12Error> {
    let pfx: Pfx = ber(data).map_err(|_| P12Error::NotPkcs12)?;
    if pfx.version != 3 {
        return Err(P12Error::NotPkcs12);
    }
    if pfx.auth_safe.content_type != OID_DATA {
        return Err(P12Error::Unsupported("public-key integrity mode (a signed authSafe)".into()));
    }
    let auth_safe = pfx.auth_safe.content.as_ref().ok_or(P12Error::Malformed("no authSafe content"))?;
    let auth_safe: OctetString = any_as(auth_safe).map_err(|_| P12Error::Malformed("authSafe is not data"))?;
    let auth_safe = auth_safe.as_bytes();

    // The MAC decides which form of the password the PKCS#12 KDF uses (and checks it).
    let candidates = bmp_passwords(password);
    let bmp = match &pfx.mac_data {
        Some(mac) => Some(verify_mac(mac, &candidates, auth_safe)?),
        None => None,
    };
    let contents: Vec<ContentInfo> = ber(auth_safe).map_err(|_| P12Error::Malformed("authSafe is not a sequence of ContentInfo"))?;
    let mut out = P12Contents::default();
    let pw = Password { utf8: password, bmp, candidates: &candidates };
    for content in &contents {
        let safe_contents = match content.content_type {
            OID_DATA => {
                let any = content.content.as_ref().ok_or(P12Error::Malformed("empty ContentInfo"))?;
                any_as::<OctetString>(any).map_err(|_| P12Error::Malformed("data ContentInfo"))?.as_bytes().to_vec()
            }
            OID_ENCRYPTED_DATA => {
                let any = content.content.as_ref().ok_or(P12Error::Malformed("empty ContentInfo"))?;
                let encrypted: EncryptedData =
                    any.decode_as_encoding(EncodingRules::Ber).map_err(|_| P12Error::Malformed("encryptedData"))?;
                let info = encrypted.encrypted_content_info;
                match info.encrypted_content {
                    Some(ciphertext) => decrypt(&info.algorithm, ciphertext.as_bytes(), &pw)?,
                    None => continue,
                }
            }
            _ => return Err(P12Error::Unsupported("public-key privacy mode (envelopedData)".into())),
        };
        read_safe_contents(&safe_contents, &pw, &mut out, 0)?;
    }
    Ok(out)
}

struct Password<'a> {
    utf8: &'a [u8],
    /// The BMPString form the MAC verified with; `None` without a MAC (try all candidates).
    bmp: Option<Vec<u8>>,
    candidates: &'a [Vec<u8>],
}

fn verify_mac(mac: &MacData, candidates: &[Vec<u8>], data: &[u8]) -> Result<Vec<u8>, P12Error> {
    let hash = Hash::from_digest_oid(mac.mac.algorithm.oid)
        .ok_or_else(|| P12Error::Unsupported(format!("the MAC algorithm {}", mac.mac.algorithm.oid)))?;
    if mac.iterations > MAX_ITERATIONS {
        return Err(P12Error::Unsupported(format!("more than {MAX_ITERATIONS} MAC iterations")));
    }
    for candidate in candidates {
        if crate::template::budget::cpu_exhausted() {
            return Err(P12Error::OverBudget);
        }
        let key = pkcs12_kdf(hash, candidate, mac.mac_salt.as_bytes(), 3, mac.iterations, hash.output_len());
        if constant_time_eq(&hash.hmac(&key, data), mac.mac.digest.as_bytes()) {
            return Ok(candidate.clone());
        }
    }
    Err(P12Error::WrongPassword)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_iterations(iterations: u32) -> Result<u32, P12Error> {
    if crate::template::budget::cpu_exhausted() {
        return Err(P12Error::OverBudget);
    }
    if iterations > MAX_ITERATIONS {
        Err(P12Error::Unsupported(format!("more than {MAX_ITERATIONS} KDF iterations")))
    } else {
        Ok(iterations.max(1))
    }
}

/// Decrypts a PKCS#12 PBE (RFC 7292 appendix C) or PBES2 (RFC 8018) ciphertext.
fn decrypt(algorithm: &AlgorithmIdentifierOwned, data: &[u8], pw: &Password) -> Result<Vec<u8>, P12Error> {
    let params = algorithm.parameters.as_ref().ok_or(P12Error::Malformed("encryption without parameters"))?;
    let params_der = params.to_der().map_err(|_| P12Error::Malformed("encryption parameters"))?;
    let pkcs12_pbe = match algorithm.oid {
        OID_PBE_SHA1_3DES => Some(Cipher::DesEde3),
        OID_PBE_SHA1_2DES => Some(Cipher::DesEde2),
        OID_PBE_SHA1_RC2_128 => Some(Cipher::Rc2 { effective_bits: 128 }),
        OID_PBE_SHA1_RC2_40 => Some(Cipher::Rc2 { effective_bits: 40 }),
        OID_PBES2 => None,
        other => return Err(P12Error::Unsupported(format!("the encryption algorithm {other}"))),
    };
    if let Some(cipher) = pkcs12_pbe {
        let p: Pkcs12PbeParams = ber(&params_der).map_err(|_| P12Error::Malformed("PBE parameters"))?;
        let iterations = check_iterations(p.iterations)?;
        let tries: Vec<&Vec<u8>> = match &pw.bmp {
            Some(bmp) => vec![bmp],
            None => pw.candidates.iter().collect(),
        };
        for bmp in tries {
            let key = pkcs12_kdf(Hash::Sha1, bmp, p.salt.as_bytes(), 1, iterations, cipher.key_len());
            let iv = pkcs12_kdf(Hash::Sha1, bmp, p.salt.as_bytes(), 2, iterations, cipher.iv_len());
            if let Some(plain) = cipher.decrypt(&key, &iv, data) {
                return Ok(plain);
            }
        }
        return Err(P12Error::WrongPassword);
    }
    let p: Pbes2Params = ber(&params_der).map_err(|_| P12Error::Malformed("PBES2 parameters"))?;
    if p.kdf.oid != OID_PBKDF2 {
        return Err(P12Error::Unsupported(format!("the key derivation function {}", p.kdf.oid)));
    }
    let kdf_der = p.kdf.parameters.as_ref().ok_or(P12Error::Malformed("PBKDF2 without parameters"))?.to_der();
    let kdf: Pbkdf2Params =
        ber(&kdf_der.map_err(|_| P12Error::Malformed("PBKDF2 parameters"))?).map_err(|_| P12Error::Malformed("PBKDF2 parameters"))?;
    let prf = match &kdf.prf {
        None => Hash::Sha1,
        Some(prf) => Hash::from_hmac_oid(prf.oid).ok_or_else(|| P12Error::Unsupported(format!("the PBKDF2 function {}", prf.oid)))?,
    };
    let cipher = match p.encryption.oid {
        OID_AES128_CBC => Cipher::Aes128,
        OID_AES192_CBC => Cipher::Aes192,
        OID_AES256_CBC => Cipher::Aes256,
        OID_DES_EDE3_CBC => Cipher::DesEde3,
        other => return Err(P12Error::Unsupported(format!("the cipher {other}"))),
    };
    let iv_any = p.encryption.parameters.as_ref().ok_or(P12Error::Malformed("cipher without IV"))?;
    let iv: OctetString = any_as(iv_any).map_err(|_| P12Error::Malformed("cipher IV"))?;
    if kdf.key_length.is_some_and(|l| l as usize != cipher.key_len()) {
        return Err(P12Error::Malformed("PBKDF2 key length does not fit the cipher"));
    }
    let mut key = vec![0u8; cipher.key_len()];
    prf.pbkdf2(pw.utf8, kdf.salt.as_bytes(), check_iterations(kdf.iterations)?, &mut key);
    cipher.decrypt(&key, iv.as_bytes(), data).ok_or(P12Error::WrongPassword)
}

fn read_safe_contents(der: &[u8], pw: &Password, out: &mut P12Contents, depth: usize) -> Result<(), P12Error> {
    if depth > MAX_NESTING {
        return Err(P12Error::Malformed("safeContents nested too deep"));
    }
    // Undecryptable garbage (a wrong password without a MAC) fails here or at the key check.
    let bags: Vec<SafeBag> = ber(der).map_err(|_| P12Error::WrongPassword)?;
    for bag in bags {
        match bag.bag_id {
            OID_KEY_BAG => {
                let key = bag.bag_value.to_der().map_err(|_| P12Error::Malformed("keyBag"))?;
                check_pkcs8(&key).ok_or(P12Error::Malformed("keyBag is not a PKCS#8 key"))?;
                out.keys.push(key);
            }
            OID_SHROUDED_KEY_BAG => {
                let info: EncryptedPrivateKeyInfo =
                    bag.bag_value.decode_as_encoding(EncodingRules::Ber).map_err(|_| P12Error::Malformed("pkcs8ShroudedKeyBag"))?;
                let key = decrypt(&info.algorithm, info.encrypted_data.as_bytes(), pw)?;
                check_pkcs8(&key).ok_or(P12Error::WrongPassword)?;
                out.keys.push(key);
            }
            OID_CERT_BAG => {
                let cert: CertBag = bag.bag_value.decode_as_encoding(EncodingRules::Ber).map_err(|_| P12Error::Malformed("certBag"))?;
                if cert.cert_id == OID_X509_CERT {
                    out.certs.push(cert.cert_value.as_bytes().to_vec());
                }
            }
            OID_SAFE_CONTENTS_BAG => {
                let nested = bag.bag_value.to_der().map_err(|_| P12Error::Malformed("safeContentsBag"))?;
                read_safe_contents(&nested, pw, out, depth + 1)?;
            }
            // CRL bags, secret bags and unknown bags are not keys or certificates.
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn pkcs12_keys_pem(data: &[u8], password: &[u8]) -> Result<String, String> {
    let contents = read_pkcs12(data, password).map_err(|e| e.message(data))?;
    if contents.keys.is_empty() {
        return Err("the PKCS#12 file holds no private key".into());
    }
    Ok(pem_encode("PRIVATE KEY", &contents.keys))
}

pub(super) fn pkcs12_certs_pem(data: &[u8], password: &[u8]) -> Result<String, String> {
    let contents = read_pkcs12(data, password).map_err(|e| e.message(data))?;
    if contents.certs.is_empty() {
        return Err("the PKCS#12 file holds no certificate".into());
    }
    Ok(pem_encode("CERTIFICATE", &order_chain(contents.certs)))
}

#[cfg(test)]
mod tests {
    use super::super::pkcs12_write::encode_pkcs12;
    use super::super::pkcs8::pkcs8;
    use super::*;

    #[test]
    fn garbage_and_base64_text_are_not_pkcs12_and_errors_do_not_quote_them() {
        let e = pkcs12_keys_pem(b"\x00\x01SECRET-binary", b"").unwrap_err();
        assert_eq!(e, "the input is not a PKCS#12 file");
        let e = pkcs12_keys_pem(b"TUlJU0VDUkVU", b"").unwrap_err();
        assert!(e.contains("looks like base64") && !e.contains("TUlJ"), "{e}");
    }

    #[test]
    fn ber_indefinite_lengths_are_read() {
        let key = pkcs8(alg(OID_ED25519, None), OctetString::new(vec![9u8; 32]).unwrap().to_der().unwrap()).unwrap();
        let certs = vec![b"cert".to_vec()];
        let der = encode_pkcs12(&certs, &key, b"pw").unwrap();
        // Re-encode the outer SEQUENCE with an indefinite length (30 80 ... 00 00).
        assert_eq!(der[0], 0x30);
        let header = 2 + usize::from(der[1] & 0x7f) * usize::from(der[1] & 0x80 != 0);
        let ber = [&[0x30, 0x80][..], &der[header..], &[0, 0]].concat();
        assert_eq!(read_pkcs12(&ber, b"pw").unwrap().keys, vec![key]);
    }
}
