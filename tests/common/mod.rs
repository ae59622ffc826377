//! Shared test harness: runs the real `extsecret` binary, makes temporary folders, and starts a
//! real `moto_server` (AWS emulator, `pip install 'moto[server]'`) on a free 127.0.0.1 port.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_extsecret"))
}

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the binary with a clean, predictable environment: no inherited `EXTSECRET_*`,
/// `ARGOCD_*` or AWS variables, and IMDS disabled so nothing ever reaches for a link-local address.
pub fn extsecret(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    scrub_env(&mut c);
    c
}

/// Removes the variables a test must set explicitly.
pub fn scrub_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("EXTSECRET_")
            || k.starts_with("ARGOCD_")
            || k.starts_with("AWS_")
            || k.starts_with("PARAM_")
            || k.starts_with("KUSTOMIZE_")
        {
            c.env_remove(k);
        }
    }
    c.env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Runs a command with `stdin` (empty when `None`) and returns its output.
pub fn run(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstderr:\n{}", o.status.code(), stderr(o));
    stdout(o)
}

/// Asserts a failed render: exit 1, nothing on stdout; returns stderr.
pub fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1; stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
    assert!(o.stdout.is_empty(), "stdout must be empty on failure, got:\n{}", stdout(o));
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

/// A fresh temporary folder, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Writes `text` to `dir/name` (creating parent folders) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port on 127.0.0.1 that accepts connections (up to 64) and never answers: a provider or
/// renderer endpoint that hangs.
pub fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(64) {
            held.push(s);
        }
    });
    port
}

/// A running moto server, shared by the tests of one test binary (tests isolate themselves by
/// using their own secret names).
pub struct Moto {
    pub url: String,
    _child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self._child.kill();
    }
}

/// The moto server: the one `scripts/test` started (`EXTSECRET_TEST_MOTO_URL`), else one started
/// here (once per test binary) on a free port, under a watchdog that stops it when this test
/// process exits. Tests isolate themselves by using their own secret names.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        if let Some(url) = std::env::var("EXTSECRET_TEST_MOTO_URL").ok().filter(|u| !u.is_empty()) {
            let child = Command::new("true").spawn().unwrap();
            return Moto { url, _child: child };
        }
        let port = free_port();
        let watchdog = format!(
            "import os,subprocess,time\np=subprocess.Popen(['moto_server','-H','127.0.0.1','-p','{port}'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nparent=os.getppid()\nwhile os.getppid()==parent and p.poll() is None: time.sleep(0.5)\np.kill()\n"
        );
        let child = Command::new("python3").args(["-c", &watchdog]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port} (pip install 'moto[server]'; scripts/test does it)");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { url, _child: child }
    })
}

/// Sets the environment the real AWS SDK needs to reach moto with static keys.
pub fn aws_env(c: &mut Command, moto: &Moto) {
    c.env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
}

// ---------------------------------------------------------------------------------------------
// Azure Key Vault: the HTTPS stand-in of tests/support/keyvault_standin.py
// ---------------------------------------------------------------------------------------------

/// TLS material for the Key Vault stand-in, made once per test process with the `openssl` CLI: a
/// CA (trusted by the binary through `SSL_CERT_FILE`) and a server certificate for IP 127.0.0.1.
struct KeyVaultTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command line is needed");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn keyvault_tls() -> &'static KeyVaultTls {
    static TLS: OnceLock<KeyVaultTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("keyvault-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n").unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        let serial = format!("0x{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
        openssl(&dir, &["req", "-new", "-key", "ca.key", "-subj", "/CN=extsecret test CA", "-out", "ca.csr"]);
        openssl(&dir, &["x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "2", "-extfile", "ca.ext", "-out", "ca.pem"]);
        openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
        openssl(&dir, &["req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr"]);
        openssl(
            &dir,
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", &serial, "-days", "2", "-extfile",
                "server.ext", "-out", "server.pem",
            ],
        );
        KeyVaultTls { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
    })
}

/// A running Key Vault stand-in (vault, Entra token endpoint and App Service managed-identity
/// endpoint on one `https://127.0.0.1:PORT` origin), with its own configuration. It stops when
/// dropped, and when this test process exits (it watches its stdin).
pub struct KeyVault {
    /// The vault URL, `https://127.0.0.1:PORT` (for `vaultUrl`).
    pub url: String,
    /// The Entra authority host, `https://127.0.0.1:PORT` (for `AZURE_AUTHORITY_HOST`).
    pub authority: String,
    /// The CA certificate (PEM) the stand-in's certificate is signed by (for `SSL_CERT_FILE`).
    pub ca: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl KeyVault {
    /// The App Service managed-identity endpoint (for `IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url)
    }

    /// Every request received so far (`GET /_admin/requests`), oldest first: objects with
    /// `method`, `path`, `query`, `authorized`, `token_kind`, `status`, `client_id`, `tenant`,
    /// `resource`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let script = "import ssl,sys,urllib.request\nctx=ssl.create_default_context(cafile=sys.argv[2])\nsys.stdout.write(urllib.request.urlopen(sys.argv[1]+'/_admin/requests',context=ctx,timeout=30).read().decode())\n";
        let out = Command::new("python3").args(["-c", script, &self.url]).arg(&self.ca).output().expect("python3");
        assert!(out.status.success(), "reading the stand-in's request log failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .expect("utf8 log")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("request log line"))
            .collect()
    }
}

impl Drop for KeyVault {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a Key Vault stand-in with `config` (see the docstring of
/// `tests/support/keyvault_standin.py` for its shape).
pub fn keyvault(config: &serde_json::Value) -> KeyVault {
    let tls = keyvault_tls();
    let dir = tempdir();
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let port_file = dir.path().join("port");
    let log = std::fs::File::create(dir.path().join("standin.log")).unwrap();
    let mut c = Command::new("python3");
    c.arg(repo().join("tests/support/keyvault_standin.py"))
        .arg("--config")
        .arg(&config_path)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--cert")
        .arg(&tls.cert)
        .arg("--key")
        .arg(&tls.key)
        .arg("--watch-stdin");
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().expect("python3");
    let deadline = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse().ok()) {
            break p;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the Key Vault stand-in exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("standin.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the Key Vault stand-in did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!("https://127.0.0.1:{port}");
    KeyVault { authority: url.clone(), url, ca: tls.ca.clone(), port, _dir: dir, child: Some(child) }
}

/// Points the Azure SDK of a command at `kv`: trusts its CA (`SSL_CERT_FILE`, read by rustls'
/// native roots) and sends token requests to it (`AZURE_AUTHORITY_HOST`). Inherited Azure identity
/// variables are removed first, so no test reaches for a real identity endpoint.
pub fn azure_env(c: &mut Command, kv: &KeyVault) {
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_") || k.starts_with("IDENTITY_") || k.starts_with("MSI_") || k == "IMDS_ENDPOINT" || k == "SSL_CERT_DIR" {
            c.env_remove(k);
        }
    }
    c.env("SSL_CERT_FILE", &kv.ca).env("AZURE_AUTHORITY_HOST", &kv.authority);
}

/// The Secrets of a successful `-o json` render: name -> key -> exact bytes.
pub fn secrets(out: &Output) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<u8>>> {
    use base64::Engine as _;
    let list: serde_json::Value = serde_json::from_str(&ok(out)).expect("JSON output");
    let mut all = std::collections::BTreeMap::new();
    for item in list["items"].as_array().expect("items") {
        if item["kind"] != "Secret" {
            continue;
        }
        let data = item["data"]
            .as_object()
            .expect("data")
            .iter()
            .map(|(k, v)| (k.clone(), base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).expect("base64")))
            .collect();
        all.insert(item["metadata"]["name"].as_str().unwrap().to_string(), data);
    }
    all
}

/// `key -> text` of one Secret of [`secrets`] (panics on non-UTF-8 values).
pub fn text(
    secrets: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<u8>>>,
    secret: &str,
) -> std::collections::BTreeMap<String, String> {
    let s = secrets.get(secret).unwrap_or_else(|| panic!("no Secret {secret} in {:?}", secrets.keys()));
    s.iter().map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).expect("utf8 value"))).collect()
}

/// A `String -> String` map from pairs.
pub fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
