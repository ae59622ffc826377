//! ESO's crypto template functions: PKCS#12 to PEM (`pkcs12key`, `pkcs12cert` and their `Pass`
//! forms), PEM to PKCS#12 (`pemToPkcs12`, `fullPemToPkcs12` and their `Pass` forms) and JWK to PEM
//! (`jwkPublicKeyPem`, `jwkPrivateKeyPem`).
//!
//! Inputs and outputs are byte-char strings ([`super::bytes`]): a PKCS#12 file comes in as its raw
//! bytes (`{{ .tls | b64dec | pkcs12key }}`), PEM goes out as Go's `pem.Encode` writes it (64-column
//! base64, LF, every block ending in a newline) and a PKCS#12 file goes out as standard base64.
//!
//! PKCS#12 reading covers what OpenSSL 3 writes by default (PBES2: PBKDF2-HMAC-SHA256 and
//! AES-256-CBC, HMAC-SHA256 MAC) and with `-legacy` (RC2-40 and 3DES with the PKCS#12 KDF,
//! HMAC-SHA1 MAC), plus AES-128/192, 2-key 3DES, RC2-128, unencrypted bags, files without a MAC
//! and BER indefinite lengths (as some Java and Windows tools write them).
//!
//! Writing follows go-pkcs12's `Modern` encoder that ESO uses (PBES2 with PBKDF2-HMAC-SHA256 and
//! AES-256-CBC for the certificates and the key, HMAC-SHA256 MAC, 2048 iterations, `localKeyId`
//! = SHA-1 of the leaf) with one difference: salts and IVs are derived from the inputs instead of
//! drawn at random, so the same input renders the same bytes (as every template function here).
//!
//! Errors never quote the input, a password or key material.

use base64::Engine as _;
use der::asn1::{Any, BitString, Null, ObjectIdentifier, OctetString, Uint};
use der::{Decode, Encode, EncodingRules, Sequence};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::bytes::text_to_engine;
use super::funcs::{arity, bytes_of, err, f, s, FResult};

// ---------------------------------------------------------------------------------------------
// Template functions
// ---------------------------------------------------------------------------------------------

/// The functions this module adds to the library.
pub fn functions() -> Vec<(String, gotmpl::ValueFunc)> {
    vec![
        f("pkcs12key", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, pkcs12_keys_pem(&bytes_of(n, &a[0])?, b""))
        }),
        f("pkcs12keyPass", |n, a| {
            arity(n, a, 2)?;
            pem_out(n, pkcs12_keys_pem(&bytes_of(n, &a[1])?, &bytes_of(n, &a[0])?))
        }),
        f("pkcs12cert", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, pkcs12_certs_pem(&bytes_of(n, &a[0])?, b""))
        }),
        f("pkcs12certPass", |n, a| {
            arity(n, a, 2)?;
            pem_out(n, pkcs12_certs_pem(&bytes_of(n, &a[1])?, &bytes_of(n, &a[0])?))
        }),
        f("pemToPkcs12", |n, a| {
            arity(n, a, 2)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, b"", false))
        }),
        f("pemToPkcs12Pass", |n, a| {
            arity(n, a, 3)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, &bytes_of(n, &a[2])?, false))
        }),
        f("fullPemToPkcs12", |n, a| {
            arity(n, a, 2)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, b"", true))
        }),
        f("fullPemToPkcs12Pass", |n, a| {
            arity(n, a, 3)?;
            b64_out(n, pem_to_pkcs12(&bytes_of(n, &a[0])?, &bytes_of(n, &a[1])?, &bytes_of(n, &a[2])?, true))
        }),
        f("jwkPublicKeyPem", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, jwk_public_key_pem(&bytes_of(n, &a[0])?))
        }),
        f("jwkPrivateKeyPem", |n, a| {
            arity(n, a, 1)?;
            pem_out(n, jwk_private_key_pem(&bytes_of(n, &a[0])?))
        }),
    ]
}

fn pem_out(name: &str, result: Result<String, String>) -> FResult {
    result.map(|text| s(&text_to_engine(&text))).map_err(|e| err(name, e))
}

fn b64_out(name: &str, result: Result<Vec<u8>, String>) -> FResult {
    result.map(|der| s(&base64::engine::general_purpose::STANDARD.encode(der))).map_err(|e| err(name, e))
}

/// PEM blocks as Go's `pem.Encode` writes them, one after the other (`pem::encode_many` would put
/// a blank line between blocks).
fn pem_encode(tag: &str, ders: &[Vec<u8>]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    ders.iter().map(|d| pem::encode_config(&pem::Pem::new(tag, d.clone()), config)).collect()
}

// ---------------------------------------------------------------------------------------------
// Object identifiers
// ---------------------------------------------------------------------------------------------

const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const OID_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const OID_SHROUDED_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const OID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const OID_SAFE_CONTENTS_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
const OID_X509_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const OID_LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
const OID_PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const OID_PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const OID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const OID_PBE_SHA1_2DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.4");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
const OID_HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
const OID_HMAC_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.8");
const OID_HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const OID_HMAC_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.10");
const OID_HMAC_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.11");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const OID_AES192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
const OID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const OID_DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Upper bound on any iteration count read from a file (a hostile count would hang the render).
const MAX_ITERATIONS: u32 = 10_000_000;
/// PBKDF2 and MAC iterations of what [`pem_to_pkcs12`] writes (as go-pkcs12's `Modern`).
const WRITE_ITERATIONS: u32 = 2048;
/// Nesting limit for safeContents bags.
const MAX_NESTING: usize = 4;

// ---------------------------------------------------------------------------------------------
// ASN.1 structures (RFC 7292, RFC 5652, RFC 8018, RFC 5208)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Sequence)]
struct Pfx {
    version: u32,
    auth_safe: ContentInfo,
    mac_data: Option<MacData>,
}

#[derive(Clone, Debug, Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct MacData {
    mac: DigestInfo,
    mac_salt: OctetString,
    #[asn1(default = "one")]
    iterations: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct EncryptedData {
    version: u32,
    encrypted_content_info: EncryptedContentInfo,
}

#[derive(Clone, Debug, Sequence)]
struct EncryptedContentInfo {
    content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted_content: Option<OctetString>,
}

#[derive(Clone, Debug, Sequence)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: Any,
    /// A SET OF attributes, kept raw: only what [`pem_to_pkcs12`] writes is built.
    bag_attributes: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    encrypted_data: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct Pbes2Params {
    kdf: AlgorithmIdentifierOwned,
    encryption: AlgorithmIdentifierOwned,
}

#[derive(Clone, Debug, Sequence)]
struct Pbkdf2Params {
    salt: OctetString,
    iterations: u32,
    key_length: Option<u32>,
    prf: Option<AlgorithmIdentifierOwned>,
}

#[derive(Clone, Debug, Sequence)]
struct Pkcs12PbeParams {
    salt: OctetString,
    iterations: u32,
}

/// PKCS#8 `PrivateKeyInfo` as this module writes it (version 0, no attributes).
#[derive(Clone, Debug, Sequence)]
struct PrivateKeyInfo {
    version: u32,
    algorithm: AlgorithmIdentifierOwned,
    private_key: OctetString,
}

/// SEC 1 `ECPrivateKey`.
#[derive(Clone, Debug, Sequence)]
struct EcPrivateKey {
    version: u32,
    private_key: OctetString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    parameters: Option<ObjectIdentifier>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    public_key: Option<BitString>,
}

#[derive(Clone, Debug, Sequence)]
struct Attribute {
    oid: ObjectIdentifier,
    values: der::asn1::SetOfVec<Any>,
}

fn alg(oid: ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

fn null() -> Option<Any> {
    Some(Any::from(Null))
}

fn any_of<T: der::EncodeValue + der::Tagged>(value: &T) -> Result<Any, der::Error> {
    Any::encode_from(value)
}

// ---------------------------------------------------------------------------------------------
// Hashes, HMAC, KDFs and ciphers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_digest_oid(oid: ObjectIdentifier) -> Option<Hash> {
        Some(match oid {
            OID_SHA1 => Hash::Sha1,
            OID_SHA224 => Hash::Sha224,
            OID_SHA256 => Hash::Sha256,
            OID_SHA384 => Hash::Sha384,
            OID_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    fn from_hmac_oid(oid: ObjectIdentifier) -> Option<Hash> {
        Some(match oid {
            OID_HMAC_SHA1 => Hash::Sha1,
            OID_HMAC_SHA224 => Hash::Sha224,
            OID_HMAC_SHA256 => Hash::Sha256,
            OID_HMAC_SHA384 => Hash::Sha384,
            OID_HMAC_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha224 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        macro_rules! run {
            ($d:ty) => {{
                let mut mac = <hmac::Hmac<$d> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }};
        }
        match self {
            Hash::Sha1 => run!(sha1::Sha1),
            Hash::Sha224 => run!(sha2::Sha224),
            Hash::Sha256 => run!(sha2::Sha256),
            Hash::Sha384 => run!(sha2::Sha384),
            Hash::Sha512 => run!(sha2::Sha512),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out),
            Hash::Sha224 => pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, iterations, out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out),
            Hash::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, iterations, out),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, out),
        }
    }
}

/// The PKCS#12 key derivation function (RFC 7292 appendix B.2). `password` is the BMPString
/// form (UTF-16BE with a terminating NUL pair, or empty for an absent password); `id` is 1 for a
/// key, 2 for an IV, 3 for a MAC key.
fn pkcs12_kdf(hash: Hash, password: &[u8], salt: &[u8], id: u8, iterations: u32, len: usize) -> Vec<u8> {
    let (u, v) = (hash.output_len(), hash.block_len());
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            Vec::new()
        } else {
            (0..v * src.len().div_ceil(v)).map(|i| src[i % src.len()]).collect()
        }
    };
    let mut input = [fill(salt), fill(password)].concat();
    let diversifier = vec![id; v];
    let mut out = Vec::with_capacity(len + u);
    loop {
        let mut a = hash.digest(&[&diversifier[..], &input[..]].concat());
        for _ in 1..iterations.max(1) {
            a = hash.digest(&a);
        }
        out.extend_from_slice(&a);
        if out.len() >= len {
            out.truncate(len);
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^(8v), B = A repeated to v bytes.
        let b: Vec<u8> = (0..v).map(|k| a[k % u]).collect();
        for chunk in input.chunks_mut(v) {
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let sum = u16::from(chunk[k]) + u16::from(b[k]) + carry;
                chunk[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
}

/// The BMPString forms of a password to try with the PKCS#12 KDF: UTF-16BE plus a NUL pair, and
/// for an empty password also the absent one (OpenSSL and Windows differ there).
fn bmp_passwords(password: &[u8]) -> Vec<Vec<u8>> {
    let mut bmp: Vec<u8> = match std::str::from_utf8(password) {
        Ok(text) => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Err(_) => password.iter().flat_map(|&b| [0, b]).collect(),
    };
    bmp.extend_from_slice(&[0, 0]);
    if password.is_empty() {
        vec![bmp, Vec::new()]
    } else {
        vec![bmp]
    }
}

#[derive(Clone, Copy, Debug)]
enum Cipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
    DesEde2,
    Rc2 { effective_bits: usize },
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
            Cipher::DesEde3 => 24,
            Cipher::DesEde2 => 16,
            Cipher::Rc2 { effective_bits } => effective_bits / 8,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Cipher::Aes128 | Cipher::Aes192 | Cipher::Aes256 => 16,
            _ => 8,
        }
    }

    /// CBC with PKCS#7 padding; `None` when the key is wrong (bad padding) or sizes are off.
    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::block_padding::Pkcs7;
        use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyIvInit};
        macro_rules! run {
            ($c:ty) => {
                cbc::Decryptor::<$c>::new_from_slices(key, iv).ok()?.decrypt_padded_vec::<Pkcs7>(data).ok()
            };
        }
        match self {
            Cipher::Aes128 => run!(aes::Aes128),
            Cipher::Aes192 => run!(aes::Aes192),
            Cipher::Aes256 => run!(aes::Aes256),
            Cipher::DesEde3 => run!(des::TdesEde3),
            Cipher::DesEde2 => run!(des::TdesEde2),
            Cipher::Rc2 { effective_bits } => {
                let rc2 = rc2::Rc2::new_with_eff_key_len(key, effective_bits);
                cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, iv).ok()?.decrypt_padded_vec::<Pkcs7>(data).ok()
            }
        }
    }
}

fn aes256_cbc_encrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
    cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).expect("32-byte key, 16-byte IV").encrypt_padded_vec::<Pkcs7>(data)
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 reading
// ---------------------------------------------------------------------------------------------

/// Why a PKCS#12 file could not be read; the messages quote nothing from the input.
#[derive(Debug, PartialEq, Eq)]
enum P12Error {
    NotPkcs12,
    WrongPassword,
    Unsupported(String),
    Malformed(&'static str),
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
        }
    }
}

/// What a PKCS#12 file holds: private keys (PKCS#8 DER) and certificates (DER), in file order.
#[derive(Debug, Default)]
struct P12Contents {
    keys: Vec<Vec<u8>>,
    certs: Vec<Vec<u8>>,
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

fn read_pkcs12(data: &[u8], password: &[u8]) -> Result<P12Contents, P12Error> {
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
        return Err(P12Error::Unsupported(format!("{} MAC iterations (more than {MAX_ITERATIONS})", mac.iterations)));
    }
    for candidate in candidates {
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
    if iterations > MAX_ITERATIONS {
        Err(P12Error::Unsupported(format!("{iterations} KDF iterations (more than {MAX_ITERATIONS})")))
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

/// Checks that `der` is a PKCS#8 `PrivateKeyInfo` (version, algorithm, key octets, then optional
/// attributes or public key).
fn check_pkcs8(der: &[u8]) -> Option<ObjectIdentifier> {
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

fn pkcs12_keys_pem(data: &[u8], password: &[u8]) -> Result<String, String> {
    let contents = read_pkcs12(data, password).map_err(|e| e.message(data))?;
    if contents.keys.is_empty() {
        return Err("the PKCS#12 file holds no private key".into());
    }
    Ok(pem_encode("PRIVATE KEY", &contents.keys))
}

fn pkcs12_certs_pem(data: &[u8], password: &[u8]) -> Result<String, String> {
    let contents = read_pkcs12(data, password).map_err(|e| e.message(data))?;
    if contents.certs.is_empty() {
        return Err("the PKCS#12 file holds no certificate".into());
    }
    Ok(pem_encode("CERTIFICATE", &order_chain(contents.certs)))
}

// ---------------------------------------------------------------------------------------------
// Certificate chains
// ---------------------------------------------------------------------------------------------

type Cert = x509_cert::certificate::CertificateInner<x509_cert::certificate::Raw>;

struct ChainNode {
    issuer: Vec<u8>,
    subject: Vec<u8>,
    authority_key_id: Option<Vec<u8>>,
    subject_key_id: Option<Vec<u8>>,
}

fn chain_node(der: &[u8]) -> Option<ChainNode> {
    use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
    let cert = Cert::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    let authority_key_id = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, aki)| aki.key_identifier)
        .map(|id| id.as_bytes().to_vec());
    let subject_key_id = tbs.get_extension::<SubjectKeyIdentifier>().ok().flatten().map(|(_, ski)| ski.0.as_bytes().to_vec());
    Some(ChainNode { issuer: tbs.issuer().to_der().ok()?, subject: tbs.subject().to_der().ok()?, authority_key_id, subject_key_id })
}

/// Orders certificates leaf -> intermediate(s) -> root when they form one chain (by issuer and
/// subject names, and key identifiers where both sides have them); otherwise keeps their order.
fn order_chain(certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let Some(nodes) = certs.iter().map(|c| chain_node(c)).collect::<Option<Vec<_>>>() else {
        return certs;
    };
    let issued_by = |child: &ChainNode, parent: &ChainNode| {
        child.issuer == parent.subject
            && match (&child.authority_key_id, &parent.subject_key_id) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    };
    let parent: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, child)| {
            if child.issuer == child.subject {
                return None; // self-issued: a root
            }
            (0..nodes.len()).find(|&j| j != i && issued_by(child, &nodes[j]))
        })
        .collect();
    let is_parent: Vec<bool> = (0..nodes.len()).map(|j| parent.contains(&Some(j))).collect();
    let leaves: Vec<usize> = (0..nodes.len()).filter(|&i| !is_parent[i]).collect();
    let [leaf] = leaves[..] else {
        return certs;
    };
    let mut order = vec![leaf];
    let mut at = leaf;
    while let Some(next) = parent[at] {
        if order.contains(&next) {
            return certs; // a cycle
        }
        order.push(next);
        at = next;
    }
    if order.len() != certs.len() {
        return certs; // not one chain
    }
    order.into_iter().map(|i| certs[i].clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 writing
// ---------------------------------------------------------------------------------------------

/// PEM certificate(s) and key to a PKCS#12 file. `full` keeps every certificate of `cert_pem` (the
/// first is the leaf), otherwise only the first.
fn pem_to_pkcs12(cert_pem: &[u8], key_pem: &[u8], password: &[u8], full: bool) -> Result<Vec<u8>, String> {
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

/// The first private key of a PEM input as PKCS#8 DER (from PKCS#8, PKCS#1 or SEC 1 form).
fn pkcs8_from_pem(key_pem: &[u8]) -> Result<Vec<u8>, String> {
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
        other => Err(format!("unsupported key PEM block `{other}`")),
    }
}

fn pkcs8(algorithm: AlgorithmIdentifierOwned, key: Vec<u8>) -> Result<Vec<u8>, String> {
    let info = PrivateKeyInfo { version: 0, algorithm, private_key: OctetString::new(key).map_err(|e| e.to_string())? };
    info.to_der().map_err(|_| "could not encode the PKCS#8 key".to_string())
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
fn encode_pkcs12(certs: &[Vec<u8>], key: &[u8], password: &[u8]) -> Result<Vec<u8>, der::Error> {
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

// ---------------------------------------------------------------------------------------------
// JWK
// ---------------------------------------------------------------------------------------------

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
                other => return Err(format!("the EC curve `{other}` is not supported (P-256, P-384)")),
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
                return Err(format!("the OKP curve `{crv}` is not supported (Ed25519)"));
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
        other => Err(format!("the JWK key type `{other}` is not supported (RSA, EC, OKP)")),
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

fn jwk_public_key_pem(input: &[u8]) -> Result<String, String> {
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

fn jwk_private_key_pem(input: &[u8]) -> Result<String, String> {
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
    fn pkcs12_kdf_matches_rfc7292_test_vector() {
        // OpenSSL's test vector (test/pkcs12_format_test / pkcs12 KDF): "smeg", salt 0A58CF64530D823F, id 1, 1 iteration, 24 bytes.
        let pw = bmp_passwords(b"smeg").swap_remove(0);
        let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
        let key = pkcs12_kdf(Hash::Sha1, &pw, &salt, 1, 1, 24);
        assert_eq!(hex(&key), "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3");
        let iv = pkcs12_kdf(Hash::Sha1, &pw, &salt, 2, 1, 8);
        assert_eq!(hex(&iv), "79993dfe048d3b76");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn garbage_and_base64_text_are_not_pkcs12_and_errors_do_not_quote_them() {
        let e = pkcs12_keys_pem(b"\x00\x01SECRET-binary", b"").unwrap_err();
        assert_eq!(e, "the input is not a PKCS#12 file");
        let e = pkcs12_keys_pem(b"TUlJU0VDUkVU", b"").unwrap_err();
        assert!(e.contains("looks like base64") && !e.contains("TUlJ"), "{e}");
    }

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

    #[test]
    fn chains_are_ordered_only_when_unambiguous() {
        // Without parseable certificates the order is kept.
        let certs = vec![b"a".to_vec(), b"b".to_vec()];
        assert_eq!(order_chain(certs.clone()), certs);
    }

    #[test]
    fn jwk_errors_are_clear() {
        assert_eq!(jwk_public_key_pem(b"{not json SECRET").unwrap_err(), "the input is not JSON");
        assert!(jwk_private_key_pem(br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
            .unwrap_err()
            .contains("public key"));
        assert!(jwk_public_key_pem(br#"{"keys":[]}"#).unwrap_err().contains("JWK set"));
        assert!(jwk_public_key_pem(br#"{"kty":"oct","k":"c2VjcmV0"}"#).unwrap_err().contains("`oct` is not supported"));
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
