//! PEM certificate(s) and key to a PKCS#12 file (RFC 7292): `pemToPkcs12`, `fullPemToPkcs12` and
//! their `Pass` forms, as ESO's `runtime/template/v2/pkcs12.go`.
//!
//! Writing follows go-pkcs12's `Modern` encoder that ESO uses (PBES2 with PBKDF2-HMAC-SHA256 and
//! AES-256-CBC for the certificates and the key, HMAC-SHA256 MAC, 2048 iterations, `localKeyId`
//! = SHA-1 of the leaf) with one difference: salts and IVs are derived from the inputs instead of
//! drawn at random, so the same input renders the same bytes (as every template function here).

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use sha2::Digest;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::asn1::*;
use super::chain::Cert;
use super::pbe::{aes256_cbc_encrypt, bmp_passwords, pkcs12_kdf, Hash};
use super::pkcs8::pkcs8_from_pem;

/// PBKDF2 and MAC iterations of what [`pem_to_pkcs12`] writes (as go-pkcs12's `Modern`).
const WRITE_ITERATIONS: u32 = 2048;

#[derive(Clone, Debug, Sequence)]
struct Attribute {
    oid: ObjectIdentifier,
    values: der::asn1::SetOfVec<Any>,
}

/// PEM certificate(s) and key to a PKCS#12 file. `full` keeps every certificate of `cert_pem` (the
/// first is the leaf), otherwise only the first.
pub(super) fn pem_to_pkcs12(cert_pem: &[u8], key_pem: &[u8], password: &[u8], full: bool) -> Result<Vec<u8>, String> {
    let certs: Vec<Vec<u8>> = pem::parse_many(cert_pem)
        .map_err(|_| "the certificate is not valid PEM".to_string())?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect();
    if certs.is_empty() {
        return Err("the certificate input holds no CERTIFICATE PEM block".into());
    }
    let certs = if full { certs } else { certs[..1].to_vec() };
    if certs.iter().any(|c| Cert::from_der(c).is_err()) {
        return Err("a CERTIFICATE PEM block is not a valid X.509 certificate".into());
    }
    let key = pkcs8_from_pem(key_pem)?;
    encode_pkcs12(&certs, &key, password).map_err(|_| "could not encode the PKCS#12 file".to_string())
}

/// Deterministic salts and IVs: HMAC-SHA256 keyed with a digest of every input, one label each.
struct Nonces([u8; 32]);

impl Nonces {
    fn new(certs: &[Vec<u8>], key: &[u8], password: &[u8]) -> Nonces {
        let mut h = sha2::Sha256::new();
        h.update(b"extsecret pemToPkcs12 v1");
        for part in certs.iter().map(Vec::as_slice).chain([key, password]) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Nonces(h.finalize().into())
    }

    fn get(&self, label: &str, len: usize) -> Vec<u8> {
        let mut out = Hash::Sha256.hmac(&self.0, label.as_bytes());
        out.truncate(len);
        out
    }
}

fn pbes2_encrypt(data: &[u8], password: &[u8], salt: Vec<u8>, iv: Vec<u8>) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), der::Error> {
    let mut key = [0u8; 32];
    Hash::Sha256.pbkdf2(password, &salt, WRITE_ITERATIONS, &mut key);
    let kdf = Pbkdf2Params {
        salt: OctetString::new(salt)?,
        iterations: WRITE_ITERATIONS,
        key_length: None,
        prf: Some(alg(OID_HMAC_SHA256, null())),
    };
    let params = Pbes2Params {
        kdf: alg(OID_PBKDF2, Some(any_of(&kdf)?)),
        encryption: alg(OID_AES256_CBC, Some(any_of(&OctetString::new(iv.clone())?)?)),
    };
    Ok((alg(OID_PBES2, Some(any_of(&params)?)), aes256_cbc_encrypt(&key, &iv, data)))
}

fn local_key_id_attributes(id: &[u8]) -> Result<Any, der::Error> {
    let attribute = Attribute { oid: OID_LOCAL_KEY_ID, values: der::asn1::SetOfVec::try_from(vec![any_of(&OctetString::new(id)?)?])? };
    Any::new(der::Tag::Set, attribute.to_der()?)
}

/// Writes a PKCS#12 file as go-pkcs12's `Modern` encoder does (see the module docs).
pub(super) fn encode_pkcs12(certs: &[Vec<u8>], key: &[u8], password: &[u8]) -> Result<Vec<u8>, der::Error> {
    let nonces = Nonces::new(certs, key, password);
    let local_key_id = Hash::Sha1.digest(&certs[0]);

    let cert_bags = certs
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            let bag = CertBag { cert_id: OID_X509_CERT, cert_value: OctetString::new(cert.clone())? };
            Ok(SafeBag {
                bag_id: OID_CERT_BAG,
                bag_value: any_of(&bag)?,
                bag_attributes: if i == 0 { Some(local_key_id_attributes(&local_key_id)?) } else { None },
            })
        })
        .collect::<Result<Vec<_>, der::Error>>()?;
    let (cert_alg, cert_ciphertext) =
        pbes2_encrypt(&cert_bags.to_der()?, password, nonces.get("cert salt", 16), nonces.get("cert iv", 16))?;
    let cert_content = EncryptedData {
        version: 0,
        encrypted_content_info: EncryptedContentInfo {
            content_type: OID_DATA,
            algorithm: cert_alg,
            encrypted_content: Some(OctetString::new(cert_ciphertext)?),
        },
    };

    let (key_alg, key_ciphertext) = pbes2_encrypt(key, password, nonces.get("key salt", 16), nonces.get("key iv", 16))?;
    let shrouded = EncryptedPrivateKeyInfo { algorithm: key_alg, encrypted_data: OctetString::new(key_ciphertext)? };
    let key_bags = vec![SafeBag {
        bag_id: OID_SHROUDED_KEY_BAG,
        bag_value: any_of(&shrouded)?,
        bag_attributes: Some(local_key_id_attributes(&local_key_id)?),
    }];

    let auth_safe = vec![
        ContentInfo { content_type: OID_ENCRYPTED_DATA, content: Some(any_of(&cert_content)?) },
        ContentInfo { content_type: OID_DATA, content: Some(any_of(&OctetString::new(key_bags.to_der()?)?)?) },
    ]
    .to_der()?;

    let mac_salt = nonces.get("mac salt", 16);
    let bmp = bmp_passwords(password).swap_remove(0);
    let mac_key = pkcs12_kdf(Hash::Sha256, &bmp, &mac_salt, 3, WRITE_ITERATIONS, 32);
    let mac = Hash::Sha256.hmac(&mac_key, &auth_safe);
    let pfx = Pfx {
        version: 3,
        auth_safe: ContentInfo { content_type: OID_DATA, content: Some(any_of(&OctetString::new(auth_safe)?)?) },
        mac_data: Some(MacData {
            mac: DigestInfo { algorithm: alg(OID_SHA256, null()), digest: OctetString::new(mac)? },
            mac_salt: OctetString::new(mac_salt)?,
            iterations: WRITE_ITERATIONS,
        }),
    };
    pfx.to_der()
}

#[cfg(test)]
mod tests {
    use super::super::pkcs12_read::{read_pkcs12, P12Error};
    use super::super::pkcs8::pkcs8;
    use super::*;

    #[test]
    fn written_pkcs12_reads_back_is_deterministic_and_checks_the_password() {
        // A throwaway Ed25519 key and a minimal certificate are enough for the container round trip.
        let key = pkcs8(alg(OID_ED25519, None), OctetString::new(vec![7u8; 32]).unwrap().to_der().unwrap()).unwrap();
        let certs = vec![b"not parsed when writing".to_vec()];
        let p12 = encode_pkcs12(&certs, &key, b"pw").unwrap();
        assert_eq!(p12, encode_pkcs12(&certs, &key, b"pw").unwrap(), "same input, same bytes");
        assert_ne!(p12, encode_pkcs12(&certs, &key, b"pw2").unwrap());
        let back = read_pkcs12(&p12, b"pw").unwrap();
        assert_eq!(back.keys, vec![key.clone()]);
        assert_eq!(back.certs, certs);
        assert_eq!(read_pkcs12(&p12, b"nope").unwrap_err(), P12Error::WrongPassword);
        // No password: the MAC uses the empty BMPString; readers that try the absent one still match.
        let open = encode_pkcs12(&certs, &key, b"").unwrap();
        assert_eq!(read_pkcs12(&open, b"").unwrap().keys, vec![key]);
    }
}
