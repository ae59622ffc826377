//! Private keys in PKCS#8 form (RFC 5208): checking what a PKCS#12 file holds, and turning the
//! key input of `pemToPkcs12` (PKCS#8, PKCS#1 per RFC 8017 or SEC 1 per RFC 5915) into PKCS#8 as
//! ESO's `runtime/template/v2/pkcs12.go` does through Go's `x509.MarshalPKCS8PrivateKey`.

use der::asn1::{BitString, ObjectIdentifier, OctetString, Uint};
use der::{Decode, Encode, EncodingRules, Sequence};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::asn1::{alg, any_of, null, OID_EC, OID_RSA};

/// PKCS#8 `PrivateKeyInfo` as this module writes it (version 0, no attributes).
#[derive(Clone, Debug, Sequence)]
struct PrivateKeyInfo {
    version: u32,
    algorithm: AlgorithmIdentifierOwned,
    private_key: OctetString,
}

/// SEC 1 `ECPrivateKey`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct EcPrivateKey {
    pub(super) version: u32,
    pub(super) private_key: OctetString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(super) parameters: Option<ObjectIdentifier>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub(super) public_key: Option<BitString>,
}

/// Checks that `der` is a PKCS#8 `PrivateKeyInfo` (version, algorithm, key octets, then optional
/// attributes or public key).
pub(super) fn check_pkcs8(der: &[u8]) -> Option<ObjectIdentifier> {
    use der::Reader;
    let mut reader = der::SliceReader::new_with_encoding_rules(der, EncodingRules::Ber).ok()?;
    let oid = reader
        .sequence(|r| {
            let version: u32 = r.decode()?;
            if version > 1 {
                return Err(der::Error::from(der::ErrorKind::Failed));
            }
            let algorithm: AlgorithmIdentifierOwned = r.decode()?;
            let _key: OctetString = r.decode()?;
            let rest = r.remaining_len();
            r.read_slice(rest)?;
            Ok(algorithm.oid)
        })
        .ok()?;
    reader.finish().ok()?;
    Some(oid)
}

/// The first private key of a PEM input as PKCS#8 DER (from PKCS#8, PKCS#1 or SEC 1 form).
pub(super) fn pkcs8_from_pem(key_pem: &[u8]) -> Result<Vec<u8>, String> {
    let blocks = pem::parse_many(key_pem).map_err(|_| "the key is not valid PEM".to_string())?;
    let block = blocks
        .iter()
        .find(|p| p.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| "the key input holds no PRIVATE KEY PEM block".to_string())?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => {
            check_pkcs8(der).ok_or_else(|| "the PRIVATE KEY block is not a PKCS#8 key".to_string())?;
            Ok(der.to_vec())
        }
        "RSA PRIVATE KEY" => {
            let fields: Vec<Uint> = Vec::from_der(der).map_err(|_| "the RSA PRIVATE KEY block is not a PKCS#1 key".to_string())?;
            if fields.len() < 9 {
                return Err("the RSA PRIVATE KEY block is not a PKCS#1 key".into());
            }
            pkcs8(alg(OID_RSA, null()), der.to_vec())
        }
        "EC PRIVATE KEY" => {
            let ec = EcPrivateKey::from_der(der).map_err(|_| "the EC PRIVATE KEY block is not a SEC 1 key".to_string())?;
            let curve = ec.parameters.ok_or_else(|| "the EC PRIVATE KEY block does not name its curve".to_string())?;
            let inner = EcPrivateKey { parameters: None, ..ec };
            let inner = inner.to_der().map_err(|_| "could not encode the EC key".to_string())?;
            pkcs8(alg(OID_EC, Some(any_of(&curve).map_err(|e| e.to_string())?)), inner)
        }
        "ENCRYPTED PRIVATE KEY" => Err("the key is encrypted: give it unencrypted".into()),
        _ => Err("unsupported key PEM block type (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY expected)".to_string()),
    }
}

/// A private key of `algorithm` wrapped in a PKCS#8 `PrivateKeyInfo`.
pub(super) fn pkcs8(algorithm: AlgorithmIdentifierOwned, key: Vec<u8>) -> Result<Vec<u8>, String> {
    let info = PrivateKeyInfo { version: 0, algorithm, private_key: OctetString::new(key).map_err(|e| e.to_string())? };
    info.to_der().map_err(|_| "could not encode the PKCS#8 key".to_string())
}
