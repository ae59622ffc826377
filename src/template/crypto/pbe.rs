//! Password-based encryption building blocks of PKCS#12 files: hashes, HMAC and PBKDF2
//! (RFC 8018) over SHA-1 and SHA-2, the PKCS#12 key derivation function and BMPString passwords
//! (RFC 7292 appendix B), and the CBC ciphers with PKCS#7 padding that PKCS#12 files use (AES,
//! 3DES, 2-key 3DES, RC2).

use der::asn1::ObjectIdentifier;
use hmac::{KeyInit, Mac};
use sha2::Digest;

use super::asn1::{
    OID_HMAC_SHA1, OID_HMAC_SHA224, OID_HMAC_SHA256, OID_HMAC_SHA384, OID_HMAC_SHA512, OID_SHA1, OID_SHA224, OID_SHA256, OID_SHA384,
    OID_SHA512,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(super) fn from_digest_oid(oid: ObjectIdentifier) -> Option<Hash> {
        Some(match oid {
            OID_SHA1 => Hash::Sha1,
            OID_SHA224 => Hash::Sha224,
            OID_SHA256 => Hash::Sha256,
            OID_SHA384 => Hash::Sha384,
            OID_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    pub(super) fn from_hmac_oid(oid: ObjectIdentifier) -> Option<Hash> {
        Some(match oid {
            OID_HMAC_SHA1 => Hash::Sha1,
            OID_HMAC_SHA224 => Hash::Sha224,
            OID_HMAC_SHA256 => Hash::Sha256,
            OID_HMAC_SHA384 => Hash::Sha384,
            OID_HMAC_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    pub(super) fn output_len(self) -> usize {
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

    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
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

    pub(super) fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
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
pub(super) fn pkcs12_kdf(hash: Hash, password: &[u8], salt: &[u8], id: u8, iterations: u32, len: usize) -> Vec<u8> {
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
pub(super) fn bmp_passwords(password: &[u8]) -> Vec<Vec<u8>> {
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
pub(super) enum Cipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
    DesEde2,
    Rc2 { effective_bits: usize },
}

impl Cipher {
    pub(super) fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
            Cipher::DesEde3 => 24,
            Cipher::DesEde2 => 16,
            Cipher::Rc2 { effective_bits } => effective_bits / 8,
        }
    }

    pub(super) fn iv_len(self) -> usize {
        match self {
            Cipher::Aes128 | Cipher::Aes192 | Cipher::Aes256 => 16,
            _ => 8,
        }
    }

    /// CBC with PKCS#7 padding; `None` when the key is wrong (bad padding) or sizes are off.
    pub(super) fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
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

pub(super) fn aes256_cbc_encrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
    cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).expect("32-byte key, 16-byte IV").encrypt_padded_vec::<Pkcs7>(data)
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
}
