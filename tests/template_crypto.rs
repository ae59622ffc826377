//! ESO's crypto template functions end to end through `extsecret render` on the fake store, in
//! both engines, against fixtures the `openssl` CLI makes at test time: a root CA (P-256), an
//! intermediate (P-384) and an RSA leaf, bundled into PKCS#12 files with the chain out of order,
//! with and without a password and with `-legacy` (RC2/3DES); JWKs written from the numbers of keys
//! openssl generated. Expected bytes are openssl's PEM (re-encoded as 64-column PEM).

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::{extsecret, failed, ok, run};

const PW: &str = "s3cret-PW";

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl CLI is needed for these tests");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// PEM blocks re-encoded as Go's pem.Encode writes them (64 columns, LF).
fn normalise(pem_text: &[u8]) -> String {
    let blocks = pem::parse_many(pem_text).unwrap();
    assert!(!blocks.is_empty(), "no PEM in {}", String::from_utf8_lossy(pem_text));
    encode(&blocks)
}

/// Concatenated PEM blocks, each with LF line ends, no blank line between them (Go's pem.Encode).
fn encode(blocks: &[pem::Pem]) -> String {
    blocks.iter().map(|b| pem::encode_config(b, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The children (tag, content) of a DER SEQUENCE (or any constructed value).
fn children(der: &[u8]) -> Vec<(u8, Vec<u8>)> {
    fn tlv(b: &[u8]) -> (u8, usize, usize) {
        let (tag, first) = (b[0], b[1] as usize);
        if first < 0x80 {
            (tag, 2, first)
        } else {
            let n = first & 0x7f;
            (tag, 2 + n, b[2..2 + n].iter().fold(0, |acc, &x| acc << 8 | x as usize))
        }
    }
    let (_, header, len) = tlv(der);
    let mut body = &der[header..header + len];
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, h, l) = tlv(body);
        out.push((tag, body[h..h + l].to_vec()));
        body = &body[h + l..];
    }
    out
}

/// An unsigned big-endian integer from DER INTEGER content (without the sign byte).
fn unsigned(int: &[u8]) -> &[u8] {
    if int.len() > 1 && int[0] == 0 {
        &int[1..]
    } else {
        int
    }
}

struct Fixtures {
    _dir: tempfile::TempDir,
    /// Base64 of PKCS#12 files: password, no password, -legacy, certificates only (root, leaf, intermediate).
    p12_pw: String,
    p12_open: String,
    p12_legacy: String,
    p12_certs: String,
    leaf_pem: String,
    leaf_key_pem: String,
    /// leaf -> intermediate -> root.
    chain_pem: String,
    /// What openssl lists for the password file, in its bag order.
    openssl_order: String,
    jwks: Vec<Jwk>,
}

struct Jwk {
    name: &'static str,
    private_json: String,
    public_json: String,
    public_pem: String,
    private_pem: String,
}

fn fixtures() -> Fixtures {
    let dir = common::tempdir();
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n\
         [leaf]\nbasicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\nsubjectAltName=DNS:app.example.com\n",
    )
    .unwrap();
    let o = |args: &[&str]| openssl(d, args);
    o(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key", "-out", "root.pem"]
        .iter()
        .chain(&["-subj", "/CN=extsecret test root", "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE"])
        .copied()
        .collect::<Vec<_>>());
    o(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout", "int.key", "-out", "int.csr"]
        .iter()
        .chain(&["-subj", "/CN=extsecret test intermediate"])
        .copied()
        .collect::<Vec<_>>());
    o(&["x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "2", "-days", "3650"]
        .iter()
        .chain(&["-extfile", "ext.cnf", "-extensions", "ca", "-out", "int.pem"])
        .copied()
        .collect::<Vec<_>>());
    o(&["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=app.example.com"]);
    o(&["x509", "-req", "-in", "leaf.csr", "-CA", "int.pem", "-CAkey", "int.key", "-set_serial", "3", "-days", "365"]
        .iter()
        .chain(&["-extfile", "ext.cnf", "-extensions", "leaf", "-out", "leaf.pem"])
        .copied()
        .collect::<Vec<_>>());
    let (root, int, leaf) = (read(d, "root.pem"), read(d, "int.pem"), read(d, "leaf.pem"));
    std::fs::write(d.join("rest.pem"), [&root[..], &int[..]].concat()).unwrap();
    std::fs::write(d.join("scrambled.pem"), [&root[..], &leaf[..], &int[..]].concat()).unwrap();
    let export = |out: &str, extra: &[&str]| {
        let base = ["pkcs12", "-export", "-inkey", "leaf.key", "-in", "leaf.pem", "-certfile", "rest.pem", "-out", out];
        o(&base.iter().chain(extra).copied().collect::<Vec<_>>());
        b64(&read(d, out))
    };
    let p12_pw = export("pw.p12", &["-passout", &format!("pass:{PW}")]);
    let p12_open = export("open.p12", &["-passout", "pass:"]);
    let p12_legacy = export("legacy.p12", &["-legacy", "-passout", &format!("pass:{PW}")]);
    // What the files hold: OpenSSL 3's defaults (PBES2/AES) and -legacy (RC2-40 certificates, 3DES key).
    let info = |file: &str, extra: &[&str]| {
        let pass = format!("pass:{PW}");
        let args: Vec<&str> = ["pkcs12", "-in", file, "-passin", &pass, "-info", "-nokeys"].iter().chain(extra).copied().collect();
        let out = Command::new("openssl").args(args).current_dir(d).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(info("pw.p12", &[]).contains("PBES2, PBKDF2, AES-256-CBC"), "{}", info("pw.p12", &[]));
    let legacy = info("legacy.p12", &["-legacy"]);
    assert!(legacy.contains("pbeWithSHA1And40BitRC2-CBC") && legacy.contains("MAC: sha1"), "{legacy}");
    o(&["pkcs12", "-export", "-nokeys", "-in", "scrambled.pem", "-passout", "pass:", "-out", "certs.p12"]);
    let p12_certs = b64(&read(d, "certs.p12"));
    let openssl_order = normalise(&o(&["pkcs12", "-in", "pw.p12", "-passin", &format!("pass:{PW}"), "-nokeys"]));
    let leaf_key_pem = normalise(&o(&["pkcs8", "-topk8", "-nocrypt", "-in", "leaf.key"]));
    let chain_pem = [normalise(&leaf), normalise(&int), normalise(&root)].concat();

    let mut jwks = Vec::new();
    // RSA: the JWK from the PKCS#1 numbers of an openssl key.
    o(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"]);
    let pkcs8 = o(&["pkcs8", "-topk8", "-nocrypt", "-in", "rsa.pem", "-outform", "DER"]);
    let pkcs1 = &children(&pkcs8)[2].1;
    let n: Vec<String> = children(pkcs1).iter().map(|(_, v)| b64url(unsigned(v))).collect();
    let public_json = format!(r#"{{"kty":"RSA","kid":"rsa-1","n":"{}","e":"{}"}}"#, n[1], n[2]);
    let private_json = format!(
        r#"{{"kty":"RSA","kid":"rsa-1","n":"{}","e":"{}","d":"{}","p":"{}","q":"{}","dp":"{}","dq":"{}","qi":"{}"}}"#,
        n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8]
    );
    jwks.push(Jwk {
        name: "rsa",
        private_json,
        public_json,
        public_pem: normalise(&o(&["pkey", "-in", "rsa.pem", "-pubout"])),
        private_pem: normalise(&o(&["pkcs8", "-topk8", "-nocrypt", "-in", "rsa.pem"])),
    });
    // EC: d from the ECPrivateKey, x and y from the uncompressed public point.
    for (name, curve, len) in [("ec256", "P-256", 32), ("ec384", "P-384", 48)] {
        let file = format!("{name}.pem");
        o(&["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}"), "-out", &file]);
        let pkcs8 = o(&["pkcs8", "-topk8", "-nocrypt", "-in", &file, "-outform", "DER"]);
        let ec = children(&children(&pkcs8)[2].1.clone()).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        let spki = o(&["pkey", "-in", &file, "-pubout", "-outform", "DER"]);
        let point = &spki[spki.len() - (1 + 2 * len)..];
        assert_eq!(point[0], 4);
        let (x, y) = (b64url(&point[1..1 + len]), b64url(&point[1 + len..]));
        jwks.push(Jwk {
            name,
            public_json: format!(r#"{{"kty":"EC","crv":"{curve}","x":"{x}","y":"{y}"}}"#),
            private_json: format!(r#"{{"kty":"EC","crv":"{curve}","x":"{x}","y":"{y}","d":"{}"}}"#, b64url(&ec[1])),
            public_pem: normalise(&o(&["pkey", "-in", &file, "-pubout"])),
            private_pem: normalise(&o(&["pkcs8", "-topk8", "-nocrypt", "-in", &file])),
        });
    }
    // Ed25519: the seed is the inner OCTET STRING of the PKCS#8 key, x the last 32 bytes of the SPKI.
    o(&["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"]);
    let pkcs8 = o(&["pkcs8", "-topk8", "-nocrypt", "-in", "ed.pem", "-outform", "DER"]);
    let seed = children(&[&[0x30, 0x22][..], &children(&pkcs8)[2].1].concat())[0].1.clone();
    let spki = o(&["pkey", "-in", "ed.pem", "-pubout", "-outform", "DER"]);
    let x = b64url(&spki[spki.len() - 32..]);
    jwks.push(Jwk {
        name: "ed25519",
        public_json: format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#),
        private_json: format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{}"}}"#, b64url(&seed)),
        public_pem: normalise(&o(&["pkey", "-in", "ed.pem", "-pubout"])),
        private_pem: normalise(&o(&["pkcs8", "-topk8", "-nocrypt", "-in", "ed.pem"])),
    });

    Fixtures {
        _dir: dir,
        p12_pw,
        p12_open,
        p12_legacy,
        p12_certs,
        leaf_pem: normalise(&leaf),
        leaf_key_pem,
        chain_pem,
        openssl_order,
        jwks,
    }
}

/// A fake store holding the fixtures (every value as a JSON string, which YAML reads as is).
fn store(fx: &Fixtures) -> String {
    let q = |v: &str| serde_json::to_string(v).unwrap();
    let mut data: Vec<(String, String)> = [
        ("p12-pw", &fx.p12_pw),
        ("p12-open", &fx.p12_open),
        ("p12-legacy", &fx.p12_legacy),
        ("p12-certs", &fx.p12_certs),
        ("crt", &fx.chain_pem),
        ("key", &fx.leaf_key_pem),
        ("garbage", &"not-a-keystore-SECRET-VALUE".to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for j in &fx.jwks {
        data.push((format!("jwk-{}", j.name), j.private_json.clone()));
        data.push((format!("jwk-{}-pub", j.name), j.public_json.clone()));
    }
    let items: String = data.iter().map(|(k, v)| format!("        - {{key: {k}, value: {}}}\n", q(v))).collect();
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: fake, namespace: apps}}\nspec:\n  provider:\n    fake:\n      data:\n{items}"
    )
}

const HB: &str = "  annotations: {extsecret.io/template-engine: handlebars}\n";

fn es<K: AsRef<str>>(name: &str, annotations: &str, data: &str, templates: &[(K, String)]) -> String {
    let tpl: String = templates.iter().map(|(k, v)| format!("        {}: {}\n", k.as_ref(), serde_json::to_string(v).unwrap())).collect();
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: {name}\n  namespace: apps\n{annotations}spec:\n  secretStoreRef: {{name: fake}}\n  data:\n{data}  target:\n    template:\n      data:\n{tpl}"
    )
}

fn remote(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(secret_key, key)| format!("    - {{secretKey: {secret_key}, remoteRef: {{key: {key}}}}}\n")).collect()
}

fn render(fx: &Fixtures, docs: &str) -> std::process::Output {
    run(extsecret(&["render", "-o", "json"]), Some(format!("{}{docs}", store(fx)).as_bytes()))
}

fn secrets(out: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["items"].as_array().unwrap().iter().filter(|i| i["kind"] == "Secret").cloned().collect()
}

fn data(secret: &serde_json::Value, key: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(secret["data"][key].as_str().unwrap_or_else(|| panic!("no key {key} in {}", secret["metadata"]["name"])))
        .unwrap()
}

fn text(secret: &serde_json::Value, key: &str) -> String {
    String::from_utf8(data(secret, key)).unwrap()
}

#[test]
fn pkcs12_to_pem_orders_the_chain_and_reads_openssl_default_and_legacy_files() {
    let fx = fixtures();
    assert_ne!(fx.openssl_order, fx.chain_pem, "the fixture must hold the chain out of order");
    let data = remote(&[("pw", "p12-pw"), ("open", "p12-open"), ("legacy", "p12-legacy"), ("certs", "p12-certs")]);
    let go = [
        ("pw.crt", format!("{{{{ .pw | b64dec | pkcs12certPass \"{PW}\" }}}}")),
        ("pw.key", format!("{{{{ .pw | b64dec | pkcs12keyPass \"{PW}\" }}}}")),
        ("open.crt", "{{ .open | b64dec | pkcs12cert }}".to_string()),
        ("open.key", "{{ .open | b64dec | pkcs12key }}".to_string()),
        ("legacy.crt", format!("{{{{ .legacy | b64dec | pkcs12certPass \"{PW}\" }}}}")),
        ("legacy.key", format!("{{{{ .legacy | b64dec | pkcs12keyPass \"{PW}\" }}}}")),
        ("certs.crt", "{{ .certs | b64dec | pkcs12cert }}".to_string()),
    ];
    let hb = [
        ("pw.crt", format!("{{{{pkcs12certPass \"{PW}\" (b64dec pw)}}}}")),
        ("pw.key", format!("{{{{pkcs12keyPass \"{PW}\" (b64dec pw)}}}}")),
        ("open.crt", "{{pkcs12cert (b64dec open)}}".to_string()),
        ("open.key", "{{pkcs12key (b64dec open)}}".to_string()),
        ("legacy.crt", format!("{{{{pkcs12certPass \"{PW}\" (b64dec legacy)}}}}")),
        ("legacy.key", format!("{{{{pkcs12keyPass \"{PW}\" (b64dec legacy)}}}}")),
        ("certs.crt", "{{pkcs12cert (b64dec certs)}}".to_string()),
    ];
    let out = ok(&render(&fx, &[es("go", "", &data, &go), es("hb", HB, &data, &hb)].concat()));
    let all = secrets(&out);
    assert_eq!(all.len(), 2);
    for s in &all {
        for file in ["pw", "open", "legacy", "certs"] {
            assert_eq!(text(s, &format!("{file}.crt")), fx.chain_pem, "{file}.crt in {}", s["metadata"]["name"]);
        }
        for file in ["pw", "open", "legacy"] {
            assert_eq!(text(s, &format!("{file}.key")), fx.leaf_key_pem, "{file}.key in {}", s["metadata"]["name"]);
        }
    }
}

#[test]
fn decoding_strategy_base64_feeds_the_raw_file() {
    let fx = fixtures();
    let data = "    - {secretKey: tls, remoteRef: {key: p12-open, decodingStrategy: Base64}}\n";
    let out = ok(&render(&fx, &es("raw", "", data, &[("tls.key", "{{ .tls | pkcs12key }}".into())])));
    assert_eq!(text(&secrets(&out)[0], "tls.key"), fx.leaf_key_pem);
}

#[test]
fn pem_to_pkcs12_is_read_by_openssl_and_by_pkcs12key() {
    let fx = fixtures();
    let data = remote(&[("crt", "crt"), ("key", "key")]);
    let go = [
        ("open.p12", "{{ pemToPkcs12 .crt .key }}".to_string()),
        ("pw.p12", format!("{{{{ pemToPkcs12Pass .crt .key \"{PW}\" }}}}")),
        ("full.p12", format!("{{{{ fullPemToPkcs12Pass .crt .key \"{PW}\" }}}}")),
        ("back.crt", "{{ pemToPkcs12 .crt .key | b64dec | pkcs12cert }}".to_string()),
        ("back.key", "{{ pemToPkcs12 .crt .key | b64dec | pkcs12key }}".to_string()),
        ("full.crt", format!("{{{{ fullPemToPkcs12Pass .crt .key \"{PW}\" | b64dec | pkcs12certPass \"{PW}\" }}}}")),
    ];
    let hb = [
        ("open.p12", "{{pemToPkcs12 crt key}}".to_string()),
        ("pw.p12", format!("{{{{pemToPkcs12Pass crt key \"{PW}\"}}}}")),
        ("full.p12", format!("{{{{fullPemToPkcs12Pass crt key \"{PW}\"}}}}")),
        ("back.crt", "{{pkcs12cert (b64dec (pemToPkcs12 crt key))}}".to_string()),
        ("back.key", "{{pkcs12key (b64dec (pemToPkcs12 crt key))}}".to_string()),
        ("full.crt", format!("{{{{pkcs12certPass \"{PW}\" (b64dec (fullPemToPkcs12Pass crt key \"{PW}\"))}}}}")),
    ];
    let docs = [es("go", "", &data, &go), es("hb", HB, &data, &hb)].concat();
    let out = ok(&render(&fx, &docs));
    let again = ok(&render(&fx, &docs));
    assert_eq!(out, again, "the same input renders the same PKCS#12 bytes");
    let all = secrets(&out);
    assert_eq!(all[0]["data"], all[1]["data"], "both engines render the same bytes");
    let s = &all[0];
    assert_eq!(text(s, "back.crt"), fx.leaf_pem);
    assert_eq!(text(s, "back.key"), fx.leaf_key_pem);
    assert_eq!(text(s, "full.crt"), fx.chain_pem);

    let dir = common::tempdir();
    for (file, pass, certs) in
        [("open.p12", "", fx.leaf_pem.clone()), ("pw.p12", PW, fx.leaf_pem.clone()), ("full.p12", PW, fx.chain_pem.clone())]
    {
        let p12 = base64::engine::general_purpose::STANDARD.decode(text(s, file)).unwrap();
        std::fs::write(dir.path().join(file), p12).unwrap();
        let pass = format!("pass:{pass}");
        let info = Command::new("openssl")
            .args(["pkcs12", "-in", file, "-passin", &pass, "-info", "-noout"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stderr).into_owned();
        assert!(info.contains("MAC: sha256") && info.contains("PBES2, PBKDF2, AES-256-CBC"), "{file}: {info}");
        let dump = openssl(dir.path(), &["pkcs12", "-in", file, "-passin", &pass, "-nodes"]);
        let blocks = pem::parse_many(&dump).unwrap();
        let certs_out: Vec<pem::Pem> = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").cloned().collect();
        let keys_out: Vec<pem::Pem> = blocks.iter().filter(|b| b.tag() == "PRIVATE KEY").cloned().collect();
        assert_eq!(encode(&keys_out), fx.leaf_key_pem, "{file}");
        // openssl lists the certificates in bag order: the leaf, then the CA certificates as given.
        assert_eq!(encode(&certs_out), certs, "{file}");
    }
}

#[test]
fn jwk_to_pem_matches_openssl() {
    let fx = fixtures();
    let mut pairs = Vec::new();
    for j in &fx.jwks {
        pairs.push((format!("jwk-{}", j.name), format!("jwk-{}", j.name)));
        pairs.push((format!("jwk-{}-pub", j.name), format!("jwk-{}-pub", j.name)));
    }
    let data = remote(&pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>());
    let mut go = Vec::new();
    let mut hb = Vec::new();
    for j in &fx.jwks {
        let (k, p) = (format!("jwk-{}", j.name), format!("jwk-{}-pub", j.name));
        go.push((j.name.to_string(), format!("{{{{ index . \"{k}\" | jwkPrivateKeyPem }}}}")));
        hb.push((j.name.to_string(), format!("{{{{jwkPrivateKeyPem [{k}]}}}}")));
        go.push((format!("{}.pub", j.name), format!("{{{{ index . \"{p}\" | jwkPublicKeyPem }}}}")));
        hb.push((format!("{}.pub", j.name), format!("{{{{jwkPublicKeyPem [{p}]}}}}")));
        // A private JWK gives its public key too.
        go.push((format!("{}.pub-from-private", j.name), format!("{{{{ index . \"{k}\" | jwkPublicKeyPem }}}}")));
    }
    let out = ok(&render(&fx, &[es("go", "", &data, &go), es("hb", HB, &data, &hb)].concat()));
    let all = secrets(&out);
    for s in &all {
        for j in &fx.jwks {
            assert_eq!(text(s, j.name), j.private_pem, "{} private in {}", j.name, s["metadata"]["name"]);
            assert_eq!(text(s, &format!("{}.pub", j.name)), j.public_pem, "{} public in {}", j.name, s["metadata"]["name"]);
        }
    }
    for j in &fx.jwks {
        assert_eq!(text(&all[0], &format!("{}.pub-from-private", j.name)), j.public_pem);
    }
}

#[test]
fn wrong_password_and_garbage_fail_clearly_without_secret_material() {
    let fx = fixtures();
    let data = remote(&[("pw", "p12-pw"), ("legacy", "p12-legacy"), ("garbage", "garbage"), ("jwk", "jwk-rsa"), ("crt", "crt")]);
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("go", "", "{{ .pw | b64dec | pkcs12keyPass \"WRONG\" }}".into(), "pkcs12keyPass: the password is wrong"),
        ("go", "", "{{ .pw | b64dec | pkcs12key }}".into(), "pkcs12key: the password is wrong"),
        ("go", "", "{{ .legacy | b64dec | pkcs12certPass \"WRONG\" }}".into(), "pkcs12certPass: the password is wrong"),
        ("go", "", "{{ .garbage | pkcs12key }}".into(), "pkcs12key: the input is not a PKCS#12 file"),
        ("go", "", "{{ .pw | pkcs12cert }}".into(), "pkcs12cert: the input is not a PKCS#12 file (it looks like base64 text"),
        ("go", "", "{{ .garbage | jwkPrivateKeyPem }}".into(), "jwkPrivateKeyPem: the input is not JSON"),
        ("go", "", "{{ .garbage | pemToPkcs12 .crt }}".into(), "pemToPkcs12: the key input holds no PRIVATE KEY PEM block"),
        ("hb", HB, "{{pkcs12keyPass \"WRONG\" (b64dec pw)}}".into(), "pkcs12keyPass: the password is wrong"),
        ("hb", HB, "{{pkcs12key garbage}}".into(), "pkcs12key: the input is not a PKCS#12 file"),
    ];
    let jwk_d = fx.jwks[0].private_json.split("\"d\":\"").nth(1).unwrap()[..40].to_string();
    for (name, annotations, template, expected) in cases {
        let err = failed(&render(&fx, &es(name, annotations, &data, &[("k", template.clone())])));
        assert!(err.contains(expected), "`{template}`: expected `{expected}` in:\n{err}");
        for secret in [PW, "SECRET-VALUE", &fx.p12_pw[..40], &fx.p12_legacy[..40], &jwk_d, "PRIVATE KEY-----\nMII"] {
            assert!(!err.contains(secret), "`{template}` leaked secret material:\n{err}");
        }
    }
}
