//! Object identifiers and the ASN.1 structures of PKCS#12 files shared by [`super::pkcs12_read`]
//! and [`super::pkcs12_write`]: PFX, MacData, SafeBag and CertBag (RFC 7292), ContentInfo and
//! EncryptedData (RFC 5652), EncryptedPrivateKeyInfo (RFC 5208) and the PBES2 and PBKDF2
//! parameters (RFC 8018); plus the key algorithm and curve identifiers of [`super::pkcs8`] and
//! [`super::jwk`] (RFC 8017, RFC 5480, RFC 8410).

use der::asn1::{Any, Null, ObjectIdentifier, OctetString};
use der::Sequence;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub(super) const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(super) const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
pub(super) const OID_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
pub(super) const OID_SHROUDED_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
pub(super) const OID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
pub(super) const OID_SAFE_CONTENTS_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
pub(super) const OID_X509_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
pub(super) const OID_LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
pub(super) const OID_PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
pub(super) const OID_PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
pub(super) const OID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
pub(super) const OID_PBE_SHA1_2DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.4");
pub(super) const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
pub(super) const OID_PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
pub(super) const OID_HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
pub(super) const OID_HMAC_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.8");
pub(super) const OID_HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
pub(super) const OID_HMAC_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.10");
pub(super) const OID_HMAC_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.11");
pub(super) const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub(super) const OID_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
pub(super) const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(super) const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(super) const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub(super) const OID_AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
pub(super) const OID_AES192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
pub(super) const OID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
pub(super) const OID_DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
pub(super) const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(super) const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(super) const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
pub(super) const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
pub(super) const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

#[derive(Clone, Debug, Sequence)]
pub(super) struct Pfx {
    pub(super) version: u32,
    pub(super) auth_safe: ContentInfo,
    pub(super) mac_data: Option<MacData>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct ContentInfo {
    pub(super) content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(super) content: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct MacData {
    pub(super) mac: DigestInfo,
    pub(super) mac_salt: OctetString,
    #[asn1(default = "one")]
    pub(super) iterations: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct DigestInfo {
    pub(super) algorithm: AlgorithmIdentifierOwned,
    pub(super) digest: OctetString,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedData {
    pub(super) version: u32,
    pub(super) encrypted_content_info: EncryptedContentInfo,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedContentInfo {
    pub(super) content_type: ObjectIdentifier,
    pub(super) algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(super) encrypted_content: Option<OctetString>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct SafeBag {
    pub(super) bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) bag_value: Any,
    /// A SET OF attributes, kept raw: only what [`super::pkcs12_write`] writes is built.
    pub(super) bag_attributes: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct CertBag {
    pub(super) cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) cert_value: OctetString,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct EncryptedPrivateKeyInfo {
    pub(super) algorithm: AlgorithmIdentifierOwned,
    pub(super) encrypted_data: OctetString,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct Pbes2Params {
    pub(super) kdf: AlgorithmIdentifierOwned,
    pub(super) encryption: AlgorithmIdentifierOwned,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct Pbkdf2Params {
    pub(super) salt: OctetString,
    pub(super) iterations: u32,
    pub(super) key_length: Option<u32>,
    pub(super) prf: Option<AlgorithmIdentifierOwned>,
}

pub(super) fn alg(oid: ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

pub(super) fn null() -> Option<Any> {
    Some(Any::from(Null))
}

pub(super) fn any_of<T: der::EncodeValue + der::Tagged>(value: &T) -> Result<Any, der::Error> {
    Any::encode_from(value)
}
